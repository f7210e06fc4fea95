/**
 * The dashboard page, served as one self-contained document: no build step, no request to anywhere
 * but the monitor itself. It takes a `snapshot` from /events, then applies `update` batches to the
 * rows that changed; every value reaches the page through textContent, never as markup.
 *
 * The script is plain ES2020 inside this template literal, so it uses no backticks, no dollar-brace
 * and no backslashes.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>handcheck monitor</title>
<style>
  :root { --up: #1f9d55; --reset: #d64545; --refused: #b83280; --closed: #e0663a; --lost: #c53030;
          --timeout: #d69e2e; --unreachable: #805ad5; --error: #2b6cb0; --unknown: #a0aec0; --fg: #1a202c; --muted: #718096; --line: #e2e8f0; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f7fafc; }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  h1 { font-size: 18px; margin: 0; }
  .counts span { margin-right: 12px; font-weight: 600; }
  .counts .n-up { color: var(--up); } .counts .n-down { color: var(--reset); } .counts .n-unknown { color: var(--muted); }
  #feed { margin-left: auto; font-size: 12px; color: var(--muted); }
  #feed.live::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--up); margin-right: 6px; }
  .controls { display: flex; gap: 8px; align-items: center; padding: 10px 20px; }
  .controls input[type=search] { width: 320px; padding: 6px 8px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
  .controls select { padding: 6px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
  .controls .hint { color: var(--muted); font-size: 12px; }
  main { padding: 0 20px 20px; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fafbfc; }
  tr.down td { background: #fff5f5; }
  td.name b { display: block; } td.name small { color: var(--muted); font-family: ui-monospace, monospace; }
  .badge { display: inline-block; min-width: 84px; text-align: center; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
  .chip { display: inline-block; padding: 1px 6px; margin: 1px 2px; border-radius: 3px; background: #edf2f7; font-size: 12px; cursor: pointer; font-family: ui-monospace, monospace; }
  .chip:hover { background: #e2e8f0; }
  td.reason { color: #4a5568; max-width: 360px; } td.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
  .pending { color: var(--muted); font-size: 11px; display: block; }
  .timeline { position: relative; width: 260px; height: 14px; background: #edf2f7; border-radius: 3px; overflow: hidden; }
  .timeline i { position: absolute; top: 0; bottom: 0; }
  .s-up { background: var(--up); } .s-reset { background: var(--reset); } .s-refused { background: var(--refused); }
  .s-closed { background: var(--closed); } .s-lost { background: var(--lost); } .s-timeout { background: var(--timeout); }
  .s-unreachable { background: var(--unreachable); } .s-error { background: var(--error); } .s-unknown { background: var(--unknown); }
  .legend { font-size: 12px; color: var(--muted); } .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 10px; vertical-align: -1px; }
  #empty { padding: 20px; color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>handcheck monitor</h1>
  <div class="counts"><span id="n-total">0 targets</span><span class="n-up" id="n-up">0 up</span><span class="n-down" id="n-down">0 down</span><span class="n-unknown" id="n-unknown">0 unknown</span></div>
  <div id="feed">connecting</div>
</header>
<div class="controls">
  <input type="search" id="filter" placeholder="filter: site=osaka rack=2 pump" aria-label="filter by label or name">
  <select id="state-filter" aria-label="filter by state"><option value="">all states</option><option value="down">down only</option><option value="up">up only</option></select>
  <span class="hint">key=value matches a label; other words match name or address</span>
  <span class="legend" id="legend"></span>
</div>
<main>
<table id="targets">
  <thead><tr><th>Target</th><th>Labels</th><th>State</th><th>Reason</th><th class="num">Connect</th><th class="num">For</th><th id="timeline-head">Timeline</th></tr></thead>
  <tbody></tbody>
</table>
<div id="empty" hidden>No target matches the filter.</div>
</main>
<script>
"use strict";
(function () {
  var STATES = ["up", "reset", "refused", "closed", "lost", "timeout", "unreachable", "error", "unknown"];
  var rows = new Map();
  var timelines = new Map();
  var timelineMs = 3600000;
  var watchedSince = 0;
  var skew = 0;
  var tbody = document.querySelector("#targets tbody");
  var filterInput = document.getElementById("filter");
  var stateFilter = document.getElementById("state-filter");

  var legend = document.getElementById("legend");
  STATES.forEach(function (s) {
    var i = document.createElement("i"); i.className = "s-" + s; legend.appendChild(i);
    legend.appendChild(document.createTextNode(s));
  });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function now() { return Date.now() + skew; }
  function age(ms) {
    if (ms === undefined || ms === null) return "";
    var s = Math.max(0, Math.floor((now() - ms) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d";
  }

  function parseFilter() {
    var labels = [], words = [];
    filterInput.value.trim().split(/ +/).forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      if (eq > 0) labels.push([part.slice(0, eq), part.slice(eq + 1)]);
      else words.push(part.toLowerCase());
    });
    return { labels: labels, words: words, state: stateFilter.value };
  }
  function matches(t, f) {
    for (var i = 0; i < f.labels.length; i++) if ((t.labels || {})[f.labels[i][0]] !== f.labels[i][1]) return false;
    for (var j = 0; j < f.words.length; j++) if ((t.name + " " + t.address).toLowerCase().indexOf(f.words[j]) < 0) return false;
    if (f.state === "up" && t.state !== "up") return false;
    if (f.state === "down" && (t.state === "up" || t.state === "unknown")) return false;
    return true;
  }
  function applyFilter() {
    var f = parseFilter(), shown = 0;
    rows.forEach(function (row) {
      var ok = matches(row.data, f);
      row.tr.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById("empty").hidden = shown > 0 || rows.size === 0;
    var q = new URLSearchParams(location.search);
    if (filterInput.value) q.set("filter", filterInput.value); else q.delete("filter");
    if (stateFilter.value) q.set("state", stateFilter.value); else q.delete("state");
    var qs = q.toString();
    history.replaceState(null, "", qs ? "?" + qs : location.pathname);
  }
  function addLabelFilter(key, value) {
    var term = key + "=" + value;
    var parts = filterInput.value.trim().split(/ +/).filter(function (p) { return p && p.indexOf(key + "=") !== 0; });
    parts.push(term);
    filterInput.value = parts.join(" ");
    applyFilter();
  }

  function makeRow(t) {
    var tr = el("tr");
    tr.dataset.target = t.name;
    var name = el("td", "name"); name.appendChild(el("b", "", t.name)); name.appendChild(el("small", "", t.address + " · " + t.mode));
    var labels = el("td", "labels");
    Object.keys(t.labels || {}).sort().forEach(function (k) {
      var chip = el("span", "chip", k + "=" + t.labels[k]);
      chip.title = "show only " + k + "=" + t.labels[k];
      chip.addEventListener("click", function () { addLabelFilter(k, t.labels[k]); });
      labels.appendChild(chip);
    });
    var state = el("td", "state"); var badge = el("span", "badge"); state.appendChild(badge); var pending = el("span", "pending"); state.appendChild(pending);
    var reason = el("td", "reason"), latency = el("td", "num latency"), since = el("td", "num since");
    var tl = el("td"); var bar = el("div", "timeline"); tl.appendChild(bar);
    [name, labels, state, reason, latency, since, tl].forEach(function (td) { tr.appendChild(td); });
    return { tr: tr, badge: badge, pending: pending, reason: reason, latency: latency, since: since, bar: bar, data: t };
  }
  function render(row) {
    var t = row.data;
    var down = t.state !== "up" && t.state !== "unknown";
    row.tr.dataset.state = t.state;
    row.tr.className = "state-" + t.state + (down ? " down" : "");
    row.badge.textContent = t.state;
    row.badge.className = "badge s-" + t.state;
    row.pending.textContent = t.pending ? t.pending.result + " " + t.pending.count + "/" + t.pending.needed : "";
    row.reason.textContent = t.reason || "";
    row.latency.textContent = typeof t.connectMs === "number" ? (t.connectMs < 10 ? t.connectMs.toFixed(2) : t.connectMs.toFixed(0)) + " ms" : "";
    row.since.textContent = age(t.since);
    renderTimeline(row);
  }
  function timelineHead() {
    var span = Math.min(timelineMs, Math.max(10000, now() - watchedSince));
    document.getElementById("timeline-head").textContent = "Last " + (span >= 3600000 ? Math.round(span / 3600000) + " h" : span >= 60000 ? Math.round(span / 60000) + " min" : Math.round(span / 1000) + " s");
  }
  function renderTimeline(row) {
    var list = timelines.get(row.data.name) || [];
    // A monitor younger than the window draws the time it has watched (or has a history for), not an
    // hour of grey.
    var end = now(), span = Math.min(timelineMs, Math.max(10000, end - watchedSince)), start = end - span;
    row.bar.textContent = "";
    var segments = [];
    var state = list.length ? list[0].from : row.data.state, from = start;
    list.forEach(function (tr) {
      var at = Math.max(tr.at, start);
      segments.push([from, at, state]);
      state = tr.to; from = at;
    });
    segments.push([from, end, list.length ? state : row.data.state]);
    segments.forEach(function (s) {
      if (s[1] <= s[0]) return;
      var i = el("i", "s-" + s[2]);
      i.style.left = ((s[0] - start) / span * 100) + "%";
      i.style.width = Math.max(0.4, (s[1] - s[0]) / span * 100) + "%";
      i.title = s[2] + " from " + new Date(s[0]).toLocaleTimeString();
      row.bar.appendChild(i);
    });
  }
  function upsert(t) {
    var row = rows.get(t.name);
    if (!row) {
      row = makeRow(t);
      rows.set(t.name, row);
      var names = Array.from(rows.keys()).sort();
      var next = names[names.indexOf(t.name) + 1];
      tbody.insertBefore(row.tr, next ? rows.get(next).tr : null);
    }
    row.data = t;
    render(row);
    row.tr.hidden = !matches(t, parseFilter());
  }
  function counts() {
    var up = 0, down = 0, unknown = 0;
    rows.forEach(function (r) { if (r.data.state === "up") up++; else if (r.data.state === "unknown") unknown++; else down++; });
    document.getElementById("n-total").textContent = rows.size + " targets";
    document.getElementById("n-up").textContent = up + " up";
    document.getElementById("n-down").textContent = down + " down";
    document.getElementById("n-unknown").textContent = unknown + " unknown";
    document.title = (down ? down + " down - " : "") + "handcheck monitor";
  }
  function addTransitions(list) {
    list.forEach(function (tr) {
      var l = timelines.get(tr.target);
      if (!l) { l = []; timelines.set(tr.target, l); }
      l.push(tr);
      while (l.length > 500) l.shift();
    });
  }

  var q = new URLSearchParams(location.search);
  filterInput.value = q.get("filter") || "";
  stateFilter.value = q.get("state") || "";
  filterInput.addEventListener("input", applyFilter);
  stateFilter.addEventListener("change", applyFilter);

  var feed = document.getElementById("feed");
  var source = new EventSource("events");
  source.addEventListener("snapshot", function (e) {
    var s = JSON.parse(e.data);
    skew = s.now - Date.now();
    timelineMs = s.timelineMs;
    watchedSince = s.transitions.length ? Math.min(s.startedAt, s.transitions[0].at) : s.startedAt;
    rows.clear(); timelines.clear(); tbody.textContent = "";
    addTransitions(s.transitions);
    s.targets.forEach(upsert);
    counts(); applyFilter(); timelineHead();
    feed.className = "live"; feed.textContent = "live";
    document.body.dataset.ready = "1";
  });
  source.addEventListener("update", function (e) {
    var u = JSON.parse(e.data);
    skew = u.now - Date.now();
    addTransitions(u.transitions);
    u.targets.forEach(upsert);
    counts();
  });
  source.addEventListener("error", function () { feed.className = ""; feed.textContent = "reconnecting"; });
  setInterval(function () { rows.forEach(function (row) { row.since.textContent = age(row.data.since); }); }, 1000);
  setInterval(function () { timelineHead(); rows.forEach(renderTimeline); }, 5000);
})();
</script>
</body>
</html>
`;
