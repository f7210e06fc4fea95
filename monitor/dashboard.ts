/**
 * The dashboard page, served as one self-contained document: no build step, no request to anywhere
 * but the monitor itself. It takes a `snapshot` from /events, then applies `update` batches, which
 * carry only the fields of a target that changed; every value reaches the page through textContent,
 * never as markup.
 *
 * Built for hundreds of targets: the list is ordered worst state first, then by name, optionally
 * grouped by one or two label keys with an overview of the counts per state of every group; only the
 * rows in view (and a few either side) exist in the DOM, repainted at most once per animation frame,
 * so the page's cost follows the rows on screen, not the fleet or the probe rate. `#target=NAME`
 * shows one target with its history from the monitor's database.
 *
 * The script is plain ES2020 inside this template literal, so it uses no backticks, no dollar-brace
 * and no backslashes; the palette and the order come in as JSON.
 */
import type { TargetState } from './state.js';

export interface StateStyle {
  /** Fill of the badge and of the timeline. */
  colour: string;
  /** Text on that fill. */
  ink: string;
  /** A shape that tells the states apart without colour. */
  glyph: string;
}

/**
 * Okabe and Ito's eight colours ("Color Universal Design", 2008), which stay distinguishable with any
 * of the common colour vision deficiencies, plus a light grey for a state with no result yet and, for
 * `reboot-loop`, their vermillion at 45% (a dark brown): past the eight, a shade of one of them is the
 * colour that stays farthest from all the others under every simulated deficiency (36 in CIELAB, the
 * closest being `lost`'s black with protanopia). `reset` and `lost` used to be two near-identical reds.
 */
export const statePalette: Readonly<Record<TargetState, StateStyle>> = Object.freeze({
  up: { colour: '#009E73', ink: '#ffffff', glyph: '✓' },
  reset: { colour: '#D55E00', ink: '#ffffff', glyph: '✕' },
  refused: { colour: '#CC79A7', ink: '#1a1a1a', glyph: '⊘' },
  closed: { colour: '#E69F00', ink: '#1a1a1a', glyph: '■' },
  lost: { colour: '#000000', ink: '#ffffff', glyph: '↯' },
  timeout: { colour: '#F0E442', ink: '#1a1a1a', glyph: '◔' },
  unreachable: { colour: '#56B4E9', ink: '#1a1a1a', glyph: '▲' },
  error: { colour: '#0072B2', ink: '#ffffff', glyph: '!' },
  unknown: { colour: '#CCCCCC', ink: '#1a1a1a', glyph: '?' },
  'reboot-loop': { colour: '#602A00', ink: '#ffffff', glyph: '↻' },
});

/**
 * Worst first, the order of the list and of the groups, by how much of the service is gone now:
 * nothing answers at all (the host or the path is gone), then the firmware is not running or refuses
 * in before mode, then a diagnosed fault (all three serve no client), then a reboot loop (it serves
 * between reboots, but every reboot drops every client, and it goes on until someone acts: worse
 * than one held connection lost), then a held connection lost (its reconnect usually says more within
 * a second), then the monitor's own host failing the connect (`error`: says nothing of the
 * appliance), then no result yet.
 */
export const stateOrder: readonly TargetState[] = ['unreachable', 'timeout', 'refused', 'reset', 'closed', 'reboot-loop', 'lost', 'error', 'unknown', 'up'];

const css = Object.entries(statePalette)
  .map(([state, s]) => `.s-${state} { background: ${s.colour}; color: ${s.ink}; }`)
  .join('\n  ');

export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>handcheck monitor</title>
<link rel="icon" href="favicon.ico">
<style>
  :root { --fg: #1a202c; --muted: #5a6678; --line: #e2e8f0; --row: 40px; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f7fafc; }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  h1 { font-size: 18px; margin: 0; } h1 a { color: inherit; text-decoration: none; }
  .counts span { margin-right: 12px; font-weight: 600; }
  #n-states span { font-weight: 400; margin-right: 8px; }
  #feed { margin-left: auto; font-size: 12px; color: var(--muted); }
  #feed.live::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: #009E73; margin-right: 6px; }
  .controls { display: flex; gap: 8px; align-items: center; padding: 10px 20px; flex-wrap: wrap; }
  .controls input[type=search] { width: 320px; padding: 6px 8px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
  .controls select { padding: 6px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
  .controls .hint { color: var(--muted); font-size: 12px; }
  .legend { font-size: 12px; color: var(--muted); } .legend span { margin-left: 8px; white-space: nowrap; }
  .glyph { display: inline-block; width: 1.1em; text-align: center; font-family: "DejaVu Sans", system-ui, sans-serif; }
  .legend .glyph { border-radius: 3px; margin-right: 3px; }
  #overview { display: flex; flex-wrap: wrap; gap: 6px; padding: 0 20px 10px; }
  #overview:empty { display: none; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; font: 12px/1.4 system-ui, sans-serif; color: inherit; text-align: left; cursor: pointer; }
  .card:hover { border-color: #a0aec0; } .card b { display: block; font-family: ui-monospace, monospace; font-weight: 600; }
  .card .n, .group-row .n { display: inline-block; padding: 0 5px; margin: 1px 2px 0 0; border-radius: 3px; font-variant-numeric: tabular-nums; }
  .card.more { cursor: default; color: var(--muted); }
  main { padding: 0 20px 20px; }
  .grid { display: grid; grid-template-columns: minmax(170px, 1.3fr) minmax(140px, 1fr) 140px minmax(200px, 2fr) 90px 80px 260px; align-items: center; }
  .thead { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fafbfc; border: 1px solid var(--line); }
  .thead > div, .row > div { padding: 0 10px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
  .thead > div { padding-top: 6px; padding-bottom: 6px; }
  #list { position: relative; background: #fff; border: 1px solid var(--line); border-top: 0; contain: strict; }
  .row, .group-row { position: absolute; left: 0; right: 0; height: var(--row); border-bottom: 1px solid var(--line); }
  .row.down { background: #fff8f3; }
  .group-row { display: flex; align-items: center; gap: 10px; padding: 0 10px; background: #edf2f7; font: 12px/1.4 system-ui, sans-serif; color: inherit; border: 0; border-bottom: 1px solid var(--line); text-align: left; cursor: pointer; width: 100%; }
  .group-row .fold { width: 1em; }
  .group-row b { font-family: ui-monospace, monospace; }
  .name a { color: inherit; text-decoration: none; font-weight: 700; } .name a:hover { text-decoration: underline; }
  .name small { display: block; color: var(--muted); font-family: ui-monospace, monospace; line-height: 1.2; }
  .badge { display: inline-block; min-width: 96px; padding: 1px 8px 1px 4px; border-radius: 3px; font-weight: 600; font-size: 12px; }
  .chip { display: inline-block; padding: 1px 6px; margin: 1px 2px; border-radius: 3px; background: #edf2f7; font-size: 12px; cursor: pointer; font-family: ui-monospace, monospace; }
  .chip:hover { background: #e2e8f0; }
  .row > .labels { white-space: normal; line-height: 17px; max-height: 36px; }
  .row .chip { margin: 0 2px 1px 0; padding: 0 5px; line-height: 16px; font-size: 11px; }
  .reason { color: #4a5568; } .num { font-variant-numeric: tabular-nums; text-align: right; }
  .pending { color: var(--muted); font-size: 11px; margin-left: 6px; }
  .timeline { position: relative; height: 14px; background: #edf2f7; border-radius: 3px; overflow: hidden; }
  .timeline i { position: absolute; top: 0; bottom: 0; }
  #empty { padding: 20px; color: var(--muted); }
  #detail { padding: 10px 20px 20px; }
  #detail h2 { margin: 6px 0; font-size: 20px; display: flex; gap: 12px; align-items: center; }
  #detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px 14px; }
  #detail dt { color: var(--muted); } #detail dd { margin: 0; }
  #detail .timeline { height: 20px; margin: 12px 0 4px; }
  #d-span { font-size: 12px; color: var(--muted); }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
  th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fafbfc; }
  ${css}
</style>
</head>
<body>
<header>
  <h1><a href="#">handcheck monitor</a></h1>
  <div class="counts"><span id="n-total">0 targets</span><span id="n-up">0 up</span><span id="n-down">0 down</span><span id="n-unknown">0 unknown</span><span id="n-states"></span></div>
  <div id="feed">connecting</div>
</header>
<div id="list-view">
<div class="controls">
  <input type="search" id="filter" placeholder="filter: site=osaka line=2 pump" aria-label="filter by label or name">
  <select id="state-filter" aria-label="filter by state"><option value="">all states</option><option value="down">down only</option><option value="up">up only</option></select>
  <label>group by <select id="group-1" aria-label="group by label"><option value="">nothing</option></select></label>
  <label>then <select id="group-2" aria-label="then by label"><option value="">nothing</option></select></label>
  <span class="hint">key=value matches a label; other words match name or address</span>
  <span class="legend" id="legend"></span>
</div>
<section id="overview" aria-label="groups"></section>
<main>
  <div class="grid thead" role="row"><div>Target</div><div>Labels</div><div>State</div><div>Reason</div><div class="num">Connect</div><div class="num">For</div><div id="timeline-head">Timeline</div></div>
  <div id="list" role="table"></div>
  <div id="empty" hidden>No target matches the filter.</div>
</main>
</div>
<section id="detail" hidden>
  <a href="#" id="back">&larr; all targets</a>
  <h2><span id="d-name"></span><span class="badge" id="d-badge"></span></h2>
  <p id="d-missing" hidden>The monitor has no target of that name.</p>
  <dl id="d-facts">
    <dt>address</dt><dd id="d-address"></dd>
    <dt>labels</dt><dd id="d-labels"></dd>
    <dt>reason</dt><dd id="d-reason"></dd>
    <dt>in this state for</dt><dd id="d-since"></dd>
    <dt>last connect</dt><dd id="d-latency"></dd>
    <dt>pending</dt><dd id="d-pending"></dd>
  </dl>
  <div class="timeline" id="d-timeline"></div>
  <div id="d-span"></div>
  <h3>History</h3>
  <table id="d-history"><thead><tr><th>Time</th><th>From</th><th>To</th><th>Reason</th><th class="num">Connect</th><th class="num">Lasted</th></tr></thead><tbody></tbody></table>
</section>
<script>
"use strict";
(function () {
  var PALETTE = ${JSON.stringify(statePalette)};
  var ORDER = ${JSON.stringify(stateOrder)};
  var OVERSCAN = 6, MAX_CARDS = 60, HISTORY_LIMIT = 1000;
  var RANK = {};
  ORDER.forEach(function (s, i) { RANK[s] = i; });
  var ROW = parseInt(getComputedStyle(document.documentElement).getPropertyValue("--row"), 10);

  var targets = new Map();
  var timelines = new Map();
  var items = [];
  var rowPool = [], groupPool = [];
  var dirtyOrder = true, frame = 0, tick = 0;
  var timelineMs = 3600000, watchedSince = 0, skew = 0;
  var detail = null;
  var folded = new Set();

  var $ = function (id) { return document.getElementById(id); };
  var list = $("list"), filterInput = $("filter"), stateFilter = $("state-filter"), group1 = $("group-1"), group2 = $("group-2");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }
  function badge(e, state) {
    var s = PALETTE[state];
    e.className = "badge s-" + state;
    e.textContent = "";
    e.appendChild(el("span", "glyph", s.glyph));
    e.appendChild(document.createTextNode(state));
  }
  function now() { return Date.now() + skew; }
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  function age(ms) { return ms === undefined || ms === null ? "" : duration(now() - ms); }
  function latency(ms) { return typeof ms === "number" ? (ms < 10 ? ms.toFixed(2) : ms.toFixed(0)) + " ms" : ""; }
  function isDown(state) { return state !== "up" && state !== "unknown"; }
  // Names in the order people count: pump-3 before pump-15.
  var collator = new Intl.Collator(undefined, { numeric: true });
  function byWorst(a, b) { return RANK[a.state] - RANK[b.state] || collator.compare(a.name, b.name); }

  var legend = $("legend");
  ORDER.forEach(function (s) {
    var span = el("span");
    span.appendChild(el("span", "glyph s-" + s, PALETTE[s].glyph));
    span.appendChild(document.createTextNode(s));
    legend.appendChild(span);
  });

  function parseFilter() {
    var labels = [], words = [];
    filterInput.value.trim().split(" ").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      if (eq > 0) labels.push([part.slice(0, eq), part.slice(eq + 1)]);
      else words.push(part.toLowerCase());
    });
    return { labels: labels, words: words, state: stateFilter.value };
  }
  function inScope(t, f) {
    for (var i = 0; i < f.labels.length; i++) if ((t.labels || {})[f.labels[i][0]] !== f.labels[i][1]) return false;
    for (var j = 0; j < f.words.length; j++) if ((t.name + " " + t.address).toLowerCase().indexOf(f.words[j]) < 0) return false;
    return true;
  }
  function inState(t, state) {
    if (state === "up") return t.state === "up";
    if (state === "down") return isDown(t.state);
    return true;
  }
  function groupKeys() {
    var keys = [];
    if (group1.value) keys.push(group1.value);
    if (group2.value && group2.value !== group1.value) keys.push(group2.value);
    return keys;
  }
  function groupOf(t, keys) {
    var labels = t.labels || {};
    return keys.map(function (k) { return k in labels ? k + "=" + labels[k] : k + " unset"; }).join(" ");
  }
  function countsText(counts) {
    return ORDER.filter(function (s) { return counts[s]; }).map(function (s) { return counts[s] + " " + s; }).join(", ");
  }

  function rebuild() {
    dirtyOrder = false;
    var f = parseFilter(), keys = groupKeys();
    var scope = [], shown = [];
    targets.forEach(function (t) {
      if (!inScope(t, f)) return;
      scope.push(t);
      if (inState(t, f.state)) shown.push(t);
    });
    shown.sort(byWorst);
    headerCounts(scope);
    var groups = new Map();
    if (keys.length) {
      scope.forEach(function (t) {
        var key = groupOf(t, keys), g = groups.get(key);
        if (!g) { g = { key: key, labels: [], counts: {}, worst: ORDER.length, members: [] }; keys.forEach(function (k) { if (k in (t.labels || {})) g.labels.push(k + "=" + t.labels[k]); }); groups.set(key, g); }
        g.counts[t.state] = (g.counts[t.state] || 0) + 1;
        g.worst = Math.min(g.worst, RANK[t.state]);
      });
      shown.forEach(function (t) { groups.get(groupOf(t, keys)).members.push(t); });
    }
    var ordered = Array.from(groups.values()).sort(function (a, b) { return a.worst - b.worst || collator.compare(a.key, b.key); });
    overview(ordered);
    items = [];
    if (keys.length) ordered.forEach(function (g) {
      if (!g.members.length) return;
      items.push({ group: g });
      if (!folded.has(g.key)) g.members.forEach(function (t) { items.push({ t: t }); });
    });
    else shown.forEach(function (t) { items.push({ t: t }); });
    list.style.height = items.length * ROW + "px";
    $("empty").hidden = items.length > 0 || targets.size === 0;
  }

  function headerCounts(scope) {
    var counts = {}, up = 0, down = 0, unknown = 0, total = 0;
    scope.forEach(function (t) { counts[t.state] = (counts[t.state] || 0) + 1; });
    targets.forEach(function (t) { if (isDown(t.state)) total++; });
    up = counts.up || 0; unknown = counts.unknown || 0; down = scope.length - up - unknown;
    setText($("n-total"), scope.length === targets.size ? targets.size + " targets" : scope.length + " of " + targets.size + " targets");
    setText($("n-up"), up + " up");
    setText($("n-down"), down + " down");
    setText($("n-unknown"), unknown + " unknown");
    var states = $("n-states");
    states.textContent = "";
    ORDER.forEach(function (s) {
      if (!isDown(s) || !counts[s]) return;
      var span = el("span");
      span.dataset.state = s;
      span.appendChild(el("span", "glyph s-" + s, PALETTE[s].glyph));
      span.appendChild(document.createTextNode(counts[s] + " " + s));
      states.appendChild(span);
    });
    // The tab's title speaks for the whole fleet, whatever this tab filters.
    document.title = (total ? total + " down - " : "") + "handcheck monitor";
  }

  function overview(groups) {
    var box = $("overview");
    box.textContent = "";
    groups.slice(0, MAX_CARDS).forEach(function (g) {
      var card = el("button", "card");
      card.dataset.group = g.key;
      card.title = "show only " + g.key;
      card.appendChild(el("b", "", g.key));
      ORDER.forEach(function (s) {
        if (!g.counts[s]) return;
        var n = el("span", "n s-" + s, PALETTE[s].glyph + " " + g.counts[s]);
        n.dataset.state = s;
        n.title = g.counts[s] + " " + s;
        card.appendChild(n);
      });
      card.addEventListener("click", function () { g.labels.forEach(function (term) { addFilterTerm(term); }); });
      box.appendChild(card);
    });
    if (groups.length > MAX_CARDS) box.appendChild(el("div", "card more", "and " + (groups.length - MAX_CARDS) + " more groups: filter to see them"));
  }

  function makeRow() {
    var row = el("div", "grid row");
    row.setAttribute("role", "row");
    var name = el("div", "name"), link = el("a"), small = el("small");
    name.appendChild(link); name.appendChild(small);
    var labels = el("div", "labels");
    var state = el("div", "state"), b = el("span", "badge"), pending = el("span", "pending");
    state.appendChild(b); state.appendChild(pending);
    var reason = el("div", "reason"), lat = el("div", "num latency"), since = el("div", "num since");
    var tl = el("div"), bar = el("div", "timeline");
    tl.appendChild(bar);
    [name, labels, state, reason, lat, since, tl].forEach(function (c) { row.appendChild(c); });
    return { node: row, link: link, small: small, labels: labels, badge: b, pending: pending, reason: reason, latency: lat, since: since, bar: bar, t: null, v: -1, tl: -1, at: -1 };
  }
  function fillRow(r, t, i) {
    if (r.at !== i) { r.node.style.top = i * ROW + "px"; r.at = i; }
    if (r.t !== t) {
      r.t = t; r.v = -1; r.tl = -1;
      r.node.dataset.target = t.name;
      r.link.textContent = t.name;
      r.link.href = "#target=" + encodeURIComponent(t.name);
      r.small.textContent = t.address + " · " + t.mode;
      r.labels.textContent = "";
      Object.keys(t.labels || {}).sort().forEach(function (k) {
        var chip = el("span", "chip", k + "=" + t.labels[k]);
        chip.title = "show only " + k + "=" + t.labels[k];
        chip.dataset.term = k + "=" + t.labels[k];
        r.labels.appendChild(chip);
      });
    }
    if (r.v !== t.v) {
      r.v = t.v;
      r.node.dataset.state = t.state;
      r.node.className = "grid row state-" + t.state + (isDown(t.state) ? " down" : "");
      if (r.badge.dataset.state !== t.state) { badge(r.badge, t.state); r.badge.dataset.state = t.state; }
      setText(r.pending, t.pending ? t.pending.result + " " + t.pending.count + "/" + t.pending.needed : "");
      setText(r.reason, t.reason || "");
      r.reason.title = t.reason || "";
      setText(r.latency, latency(t.connectMs));
    }
    setText(r.since, age(t.since));
    var tl = tick * 1e6 + (t.tl || 0);
    if (r.tl !== tl) { r.tl = tl; drawTimeline(r.bar, timelines.get(t.name) || [], t.state, Math.min(timelineMs, Math.max(10000, now() - watchedSince))); }
  }
  function makeGroupRow() {
    var row = el("button", "group-row");
    var fold = el("span", "fold"), name = el("b"), counts = el("span", "counts-text");
    row.appendChild(fold); row.appendChild(name); row.appendChild(counts);
    return { node: row, fold: fold, name: name, counts: counts, at: -1 };
  }
  function fillGroupRow(r, g, i) {
    if (r.at !== i) { r.node.style.top = i * ROW + "px"; r.at = i; }
    var open = !folded.has(g.key);
    r.node.dataset.group = g.key;
    r.node.setAttribute("aria-expanded", String(open));
    r.node.title = (open ? "fold " : "unfold ") + g.key;
    setText(r.fold, open ? "▾" : "▸");
    setText(r.name, g.key);
    setText(r.counts, countsText(g.counts) + (open ? "" : " (folded)"));
  }

  function paint() {
    var top = list.getBoundingClientRect().top;
    var first = Math.max(0, Math.floor(-top / ROW) - OVERSCAN);
    var last = Math.min(items.length, Math.ceil((innerHeight - top) / ROW) + OVERSCAN);
    var rows = 0, groups = 0;
    for (var i = first; i < last; i++) {
      var item = items[i];
      if (item.t) {
        var r = rowPool[rows] || (rowPool[rows] = makeRow());
        if (!r.node.parentNode) list.appendChild(r.node);
        fillRow(r, item.t, i);
        rows++;
      } else {
        var g = groupPool[groups] || (groupPool[groups] = makeGroupRow());
        if (!g.node.parentNode) list.appendChild(g.node);
        fillGroupRow(g, item.group, i);
        groups++;
      }
    }
    rowPool.splice(rows).forEach(function (r) { r.node.remove(); });
    groupPool.splice(groups).forEach(function (g) { g.node.remove(); });
  }

  function timelineHead() {
    var span = Math.min(timelineMs, Math.max(10000, now() - watchedSince));
    setText($("timeline-head"), "Last " + (span >= 3600000 ? Math.round(span / 3600000) + " h" : span >= 60000 ? Math.round(span / 60000) + " min" : Math.round(span / 1000) + " s"));
  }
  function drawTimeline(bar, transitions, current, span) {
    // A monitor younger than the window draws the time it has watched (or has a history for), not an
    // hour of grey.
    var end = now(), start = end - span;
    bar.textContent = "";
    var segments = [];
    var state = transitions.length ? transitions[0].from : current, from = start;
    transitions.forEach(function (tr) {
      if (tr.at < start) { state = tr.to; return; }
      segments.push([from, tr.at, state]);
      state = tr.to; from = tr.at;
    });
    segments.push([from, end, state]);
    segments.forEach(function (s) {
      if (s[1] <= s[0]) return;
      var i = el("i", "s-" + s[2]);
      i.style.left = ((s[0] - start) / span * 100) + "%";
      i.style.width = Math.max(0.4, (s[1] - s[0]) / span * 100) + "%";
      i.title = s[2] + " from " + new Date(s[0]).toLocaleString();
      bar.appendChild(i);
    });
  }

  function addTransitions(transitions) {
    transitions.forEach(function (tr) {
      var l = timelines.get(tr.target);
      if (!l) { l = []; timelines.set(tr.target, l); }
      l.push(tr);
      if (l.length > 500) l.shift();
      var t = targets.get(tr.target);
      if (t) t.tl = (t.tl || 0) + 1;
      if (detail && detail.name === tr.target && detail.history) detail.history.push(tr);
    });
  }
  function apply(change) {
    var t = targets.get(change.name);
    if (!t) { t = { v: 0, tl: 0 }; targets.set(change.name, t); dirtyOrder = true; }
    if ("state" in change || "labels" in change) dirtyOrder = true;
    for (var k in change) t[k] = change[k] === null ? undefined : change[k];
    t.v++;
  }
  function labelKeys() {
    var keys = new Set();
    targets.forEach(function (t) { Object.keys(t.labels || {}).forEach(function (k) { keys.add(k); }); });
    var sorted = Array.from(keys).sort();
    [group1, group2].forEach(function (select) {
      var value = select.value || select.dataset.wanted || "";
      while (select.options.length > 1) select.remove(1);
      sorted.forEach(function (k) { select.add(new Option(k, k)); });
      select.value = sorted.indexOf(value) >= 0 ? value : "";
    });
  }

  function schedule() { if (!frame) frame = requestAnimationFrame(draw); }
  function draw() {
    frame = 0;
    if (dirtyOrder) rebuild();
    if (detail) drawDetail(); else paint();
  }
  function filtersChanged() {
    dirtyOrder = true;
    var q = new URLSearchParams(location.search);
    [["filter", filterInput.value], ["state", stateFilter.value], ["group", groupKeys().join(",")]].forEach(function (p) { if (p[1]) q.set(p[0], p[1]); else q.delete(p[0]); });
    var qs = q.toString();
    history.replaceState(null, "", (qs ? "?" + qs : location.pathname) + location.hash);
    // Drawn now rather than at the next frame, so what was typed shows at once.
    draw();
  }
  function addFilterTerm(term) {
    var key = term.slice(0, term.indexOf("=") + 1);
    var parts = filterInput.value.trim().split(" ").filter(function (p) { return p && p.indexOf(key) !== 0; });
    parts.push(term);
    filterInput.value = parts.join(" ");
    filtersChanged();
  }

  function openDetail() {
    var m = /^#target=(.+)$/.exec(location.hash);
    if (!m) {
      detail = null;
      $("detail").hidden = true; $("list-view").hidden = false;
      dirtyOrder = true; schedule();
      return;
    }
    var name = decodeURIComponent(m[1]);
    detail = { name: name, history: null };
    $("list-view").hidden = true; $("detail").hidden = false;
    $("detail").removeAttribute("data-loaded");
    $("d-history").tBodies[0].textContent = "";
    scrollTo(0, 0);
    schedule();
    fetch("api/targets/" + encodeURIComponent(name) + "/history?limit=" + HISTORY_LIMIT).then(function (res) {
      return res.ok ? res.json() : { transitions: [] };
    }).then(function (body) {
      if (!detail || detail.name !== name) return;
      detail.history = body.transitions;
      $("detail").dataset.loaded = name;
      schedule();
    });
  }
  function drawDetail() {
    var t = targets.get(detail.name);
    setText($("d-name"), detail.name);
    document.title = detail.name + " - handcheck monitor";
    $("d-missing").hidden = !!t || targets.size === 0;
    $("d-facts").hidden = !t;
    if (!t) return;
    if ($("d-badge").dataset.state !== t.state) { badge($("d-badge"), t.state); $("d-badge").dataset.state = t.state; }
    setText($("d-address"), t.address + " · " + t.mode + (t.mode === "hold" ? (t.held ? " · connection held" : " · not connected") : ""));
    var labels = $("d-labels");
    if (!labels.childNodes.length || labels.dataset.of !== t.name) {
      labels.textContent = "";
      labels.dataset.of = t.name;
      Object.keys(t.labels || {}).sort().forEach(function (k) { labels.appendChild(el("span", "chip", k + "=" + t.labels[k])); });
    }
    setText($("d-reason"), t.reason || "");
    setText($("d-since"), age(t.since));
    setText($("d-latency"), latency(t.connectMs));
    setText($("d-pending"), t.pending ? t.pending.result + " " + t.pending.count + " of " + t.pending.needed + " results needed" : "none");
    var h = detail.history;
    if (!h) return;
    var body = $("d-history").tBodies[0];
    if (body.dataset.rows !== String(h.length) || body.dataset.tick !== String(tick)) {
      body.dataset.rows = String(h.length);
      body.dataset.tick = String(tick);
      body.textContent = "";
      for (var i = h.length - 1; i >= 0; i--) {
        var tr = h[i], row = el("tr");
        row.dataset.to = tr.to;
        row.appendChild(el("td", "", new Date(tr.at).toLocaleString()));
        var from = el("td"), fb = el("span"); badge(fb, tr.from); from.appendChild(fb); row.appendChild(from);
        var to = el("td"), tb = el("span"); badge(tb, tr.to); to.appendChild(tb); row.appendChild(to);
        row.appendChild(el("td", "reason", tr.reason));
        row.appendChild(el("td", "num", latency(tr.connectMs)));
        row.appendChild(el("td", "num", i + 1 < h.length ? duration(h[i + 1].at - tr.at) : duration(now() - tr.at) + " so far"));
        body.appendChild(row);
      }
      var start = h.length ? h[0].at : now() - 10000;
      drawTimeline($("d-timeline"), h, t.state, Math.max(10000, now() - start));
      setText($("d-span"), h.length ? "since " + new Date(start).toLocaleString() + (h.length >= HISTORY_LIMIT ? " (the last " + HISTORY_LIMIT + " transitions)" : "") : "no transitions recorded");
    }
  }

  var q = new URLSearchParams(location.search);
  filterInput.value = q.get("filter") || "";
  stateFilter.value = q.get("state") || "";
  var wanted = (q.get("group") || "").split(",");
  group1.dataset.wanted = wanted[0] || "";
  group2.dataset.wanted = wanted[1] || "";
  filterInput.addEventListener("input", filtersChanged);
  [stateFilter, group1, group2].forEach(function (s) { s.addEventListener("change", filtersChanged); });
  list.addEventListener("click", function (e) {
    var chip = e.target.closest(".chip");
    if (chip) addFilterTerm(chip.dataset.term);
    var group = e.target.closest(".group-row");
    if (group) {
      if (folded.has(group.dataset.group)) folded.delete(group.dataset.group); else folded.add(group.dataset.group);
      dirtyOrder = true;
      draw();
    }
  });
  addEventListener("scroll", schedule, { passive: true });
  addEventListener("resize", schedule);
  addEventListener("hashchange", openDetail);

  var feed = $("feed");
  var source = new EventSource("events");
  source.addEventListener("snapshot", function (e) {
    var s = JSON.parse(e.data);
    skew = s.now - Date.now();
    timelineMs = s.timelineMs;
    watchedSince = s.transitions.length ? Math.min(s.startedAt, s.transitions[0].at) : s.startedAt;
    targets.clear(); timelines.clear();
    s.targets.forEach(apply);
    addTransitions(s.transitions);
    labelKeys();
    dirtyOrder = true;
    timelineHead();
    draw();
    feed.className = "live"; feed.textContent = "live";
    document.body.dataset.ready = "1";
  });
  source.addEventListener("update", function (e) {
    var u = JSON.parse(e.data);
    skew = u.now - Date.now();
    u.targets.forEach(apply);
    addTransitions(u.transitions);
    schedule();
  });
  source.addEventListener("error", function () { feed.className = ""; feed.textContent = "reconnecting"; });
  // Ages tick every second, timelines move every 5 s: both only for the rows on screen.
  setInterval(schedule, 1000);
  setInterval(function () { tick++; timelineHead(); schedule(); }, 5000);
  openDetail();
})();
</script>
</body>
</html>
`;
