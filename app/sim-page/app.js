// The sim page. Plain ES module, no build step, no dependencies: everything arrives over /events
// (server-sent events) and every action goes through the control endpoint's own routes.
//
// Sections are updated in place, keyed by id, rather than rebuilt: a rebuilt button would take the
// keyboard focus with it once a second.

const $ = (id) => document.getElementById(id);
const svgNs = 'http://www.w3.org/2000/svg';

const view = {
  features: { faults: false, scenarios: false, clock: false },
  catalogue: {},
  gpioLines: {},
  status: undefined,
  decisions: [],
  history: [],
  sampleMs: 1000,
  quantity: '',
};

const decisionLimit = 200;
const speeds = [1, 10, 60];
const actionLabels = {
  accept: 'accepted',
  reset: 'RST',
  close: 'FIN',
  'recheck-reset': 'RST (recheck)',
  limit: 'RST (limit)',
  'idle-close': 'FIN (idle)',
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('aria-') || key === 'role' || key === 'for') node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) if (child !== undefined && child !== null) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(svgNs, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Makes `container`'s children match `items` by key: creates the missing, updates all, removes the rest. */
function keyed(container, items, keyOf, create, update) {
  const existing = new Map([...container.children].map((child) => [child.dataset.key, child]));
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (node) existing.delete(key);
    else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const want = previous ? previous.nextSibling : container.firstChild;
    if (want !== node) container.insertBefore(node, want);
    previous = node;
  }
  for (const node of existing.values()) node.remove();
}

function formatTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function formatValue(value) {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 100 ? value.toFixed(1) : String(Number(value.toPrecision(4)));
  }
  return String(value);
}

function boardNow() {
  return view.status?.sim?.clock.now ?? Date.now();
}

let noticeTimer;
function notice(message) {
  const box = $('notice');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    box.hidden = true;
  }, 8000);
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    notice(`${method} ${path} failed: ${err.message}`);
    return undefined;
  }
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    notice(`${method} ${path}: ${json.error?.message ?? `HTTP ${response.status}`}${json.error?.code ? ` (${json.error.code})` : ''}`);
    return undefined;
  }
  return json;
}

// ---- board ----------------------------------------------------------------------------------

function renderHeader(status) {
  setText($('board-name'), status.board.name);
  setText($('board-id'), `${status.board.id} - ${status.sim ? 'sim board' : `${status.board.backend} hardware`}${status.restarts ? ` - ${status.restarts} restart(s)` : ''}`);
  document.title = `handcheck - ${status.board.id}`;
  const clock = status.sim?.clock;
  setText($('clock-now'), clock ? `${formatTime(clock.now)} (${clock.mode})` : formatTime(Date.now()));
  $('clock-speed-label').hidden = !clock;
  if (clock) setText($('clock-speed'), `${clock.speed} x`);
  for (const button of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('speed-buttons').children)) button.setAttribute('aria-pressed', String(Number(button.dataset.speed) === clock?.speed));
}

/** Raw sysfs counters (rx_packets, ...) are shown in the NIC box, not repeated in the component list. */
function readingEntries(reading) {
  return Object.entries(reading ?? {}).filter(([k, v]) => typeof v !== 'object' && !/^[a-z]+(_[a-z]+)+$/.test(k));
}

function renderComponents(status) {
  const now = boardNow();
  keyed(
    $('components'),
    status.components,
    (c) => c.id,
    (c) => {
      const item = el('li', { className: 'component', dataset: { component: c.id } });
      const head = el('div', { className: 'head' });
      head.append(
        el('strong', { textContent: c.id }),
        el('span', { className: 'kind', textContent: c.description ? `${c.kind} - ${c.description}` : c.kind }),
        el('span', { className: 'badge' }),
        el('span', { className: 'age mono' }),
      );
      item.append(head, el('div', { className: 'reading' }));
      return item;
    },
    (item, c) => {
      item.dataset.state = c.state;
      const [, , badge, age] = item.firstChild.children;
      badge.className = `badge ${c.state}`;
      setText(badge, c.state);
      setText(age, c.diagnosedAt === null ? 'not diagnosed' : `${Math.max(0, (now - c.diagnosedAt) / 1000).toFixed(1)} s ago`);
      const detail = item.lastChild;
      const failing = Boolean(c.reason) && c.state !== 'ok';
      detail.classList.toggle('reason', failing);
      if (c.reason) setText(detail, `${c.reason}${c.code ? ` (${c.code})` : ''}`);
      else setText(detail, readingEntries(c.reading).map(([k, v]) => `${k} ${formatValue(v)}`).join('   '));
    },
  );
}

function facts(dl, pairs) {
  keyed(
    dl,
    pairs,
    ([name]) => name,
    ([name]) => {
      const wrap = el('div', { className: 'fact' });
      wrap.append(el('dt', { textContent: name }), el('dd'));
      return wrap;
    },
    (wrap, [, value]) => setText(wrap.lastChild, value),
  );
}

function renderNic(status) {
  const pairs = [];
  const nics = status.components.filter((c) => c.kind === 'ethernet');
  for (const nic of nics) {
    const r = nic.reading;
    const prefix = nics.length > 1 ? `${nic.id} ` : '';
    if (!r) {
      pairs.push([`${prefix}state`, `${nic.state}${nic.reason ? `: ${nic.reason}` : ''}`]);
      continue;
    }
    pairs.push(
      [`${prefix}carrier`, `${r.carrier ? 'up' : 'down'} (${r.operstate}${r.speedMbps ? `, ${r.speedMbps} Mb/s` : ''})`],
      [`${prefix}rx / tx packets`, `${r.rx_packets ?? '-'} / ${r.tx_packets ?? '-'}`],
      [`${prefix}rx errors`, `${r.rx_errors ?? '-'} (${formatValue(r.rxErrorsPerS ?? 0)}/s)`],
      [`${prefix}CRC errors`, `${r.rx_crc_errors ?? '-'} (${formatValue(r.crcErrorsPerS ?? 0)}/s)`],
      [`${prefix}dropped rx / tx`, `${r.rx_dropped ?? '-'} / ${r.tx_dropped ?? '-'}`],
    );
  }
  if (nics.length === 0) pairs.push(['interfaces', 'none in this board entry']);
  facts($('nic'), pairs);
}

function renderWatchdog(status) {
  const pairs = [];
  const wdt = status.sim?.watchdog;
  if (wdt) {
    pairs.push(['armed', wdt.armed ? 'yes' : 'no'], ['time left', wdt.timeLeftS === null ? '-' : `${wdt.timeLeftS.toFixed(1)} s`], ['kicks', String(wdt.kicks)]);
  }
  if (status.watchdog) pairs.push(['keeper', `${status.watchdog.health}${status.watchdog.reason ? `: ${status.watchdog.reason}` : ''}`]);
  if (status.sim) pairs.push(['board resets', String(status.sim.resets)]);
  if (pairs.length === 0) pairs.push(['watchdog', 'none in this board entry']);
  facts($('watchdog'), pairs);
}

function renderGpio(status) {
  const levels = status.sim?.gpio;
  const names = Object.keys(view.gpioLines);
  if (!levels) {
    keyed($('gpio'), [{ name: 'note' }], (x) => x.name, () => el('li', { textContent: 'Line levels are shown on the sim board; on hardware see the gpio-status components.' }), () => {});
    return;
  }
  keyed(
    $('gpio'),
    names,
    (name) => name,
    (name) => {
      const line = view.gpioLines[name];
      const item = el('li', { dataset: { line: name } });
      item.append(
        el('span', { className: 'mono', textContent: name }),
        el('span', { className: 'dir', textContent: `${line.direction}${line.activeLow ? ', active low' : ''}` }),
        el('span', { className: 'level' }),
      );
      return item;
    },
    (item, name) => {
      const level = levels[name];
      const node = item.lastChild;
      node.className = `level ${level === 1 ? 'high' : 'low'}`;
      setText(node, level === undefined ? '?' : String(level));
      node.setAttribute('aria-label', `level ${level === 1 ? 'high' : 'low'}`);
      item.dataset.level = String(level);
    },
  );
}

// ---- gate -----------------------------------------------------------------------------------

function renderServices(status) {
  keyed(
    $('services'),
    status.services,
    (s) => s.id,
    (s) => {
      const box = el('div', { className: 'service', dataset: { service: s.id } });
      box.append(el('h3'), el('div', { className: 'policy mono' }), el('ul', { className: 'counters' }), el('div', { className: 'last hint' }));
      return box;
    },
    (box, s) => {
      const p = s.policy;
      setText(box.children[0], `${s.id} - ${s.protocol} on ${s.host}:${s.port}${s.stats.listening ? '' : ' (not listening)'}`);
      setText(
        box.children[1],
        `mode ${p.mode}, onFail ${p.onFail}, reuse ${p.reuse}, maxAge ${p.maxAgeMs} ms, recheck ${p.recheckMs ? `${p.recheckMs} ms` : 'off'}; depends on ${s.dependsOn.join(', ') || 'nothing'}`,
      );
      const st = s.stats;
      const counters = [
        ['held', st.held],
        ['waiting', st.waiting],
        ['connections', st.connections],
        ['accepted', st.accepted],
        ['reused', st.reused],
        ['reset', st.reset],
        ['closed', st.closed],
        ['recheck resets', st.recheckReset],
        ['diagnosed', st.diagnosed],
        ['timeouts', st.diagnosisTimeouts],
      ];
      keyed(
        box.children[2],
        counters,
        ([name]) => name,
        ([name]) => el('li', { dataset: { counter: name } }, `${name} `, el('strong')),
        (li, [, value]) => setText(li.lastChild, String(value)),
      );
      const last = st.lastVerdict;
      setText(
        box.children[3],
        last
          ? `last verdict ${last.ok ? 'ok' : 'failed'} at ${formatTime(last.startedAt)} in ${last.durationMs.toFixed(2)} ms${last.ok ? '' : `: ${last.failures.map((f) => `${f.component}: ${f.reason}`).join('; ')}`}`
          : 'no verdict yet',
      );
    },
  );
}

function decisionRow(d) {
  const verdict = d.verdict;
  const row = el('tr', { dataset: { action: d.action, peer: d.peer, service: d.service } });
  const failures = verdict && !verdict.ok ? verdict.failures.map((f) => `${f.component}: ${f.reason}`).join('; ') : '';
  const failed = verdict && !verdict.ok ? `failed: ${[...new Set(verdict.failures.map((f) => f.component))].join(', ')}` : 'ok';
  row.append(
    el('td', { textContent: formatTime(d.at) }),
    el('td', { textContent: (view.status?.services.length ?? 1) > 1 ? `${d.service} ${d.peer}` : d.peer }),
    el('td', {}, el('span', { className: `badge ${d.action}`, textContent: actionLabels[d.action] ?? d.action })),
    el('td', { className: 'failures', textContent: verdict ? failed : '-', title: failures }),
    el('td', { textContent: verdict ? (verdict.reused ? 'yes' : 'no') : '-' }),
    el('td', { textContent: verdict ? verdict.durationMs.toFixed(2) : '-' }),
  );
  return row;
}

function addDecision(d) {
  view.decisions.push(d);
  if (view.decisions.length > decisionLimit) view.decisions.shift();
  const body = $('decisions');
  body.prepend(decisionRow(d));
  while (body.children.length > decisionLimit) body.lastChild.remove();
}

function renderDecisions() {
  $('decisions').replaceChildren(...[...view.decisions].reverse().map(decisionRow));
}

// ---- faults ---------------------------------------------------------------------------------

function activeFaults() {
  return view.status?.sim?.faults ?? [];
}

async function toggleFault(target, kind) {
  const matching = activeFaults().filter((f) => f.target === target && f.kind === kind);
  if (matching.length > 0) {
    for (const fault of matching) await api('DELETE', `/faults/${encodeURIComponent(fault.id)}`);
    return;
  }
  const duration = Number(/** @type {HTMLInputElement} */ ($('fault-duration')).value);
  await api('POST', '/faults', { target, kind, ...(duration > 0 ? { durationMs: duration } : {}) });
}

function buildFaultTargets() {
  const componentIds = (view.status?.components ?? []).map((c) => c.id);
  const targets = Object.keys(view.catalogue).sort((a, b) => {
    const ia = componentIds.indexOf(a);
    const ib = componentIds.indexOf(b);
    return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib) || a.localeCompare(b);
  });
  const boxes = targets.map((target) => {
    const component = view.status?.components.find((c) => c.id === target);
    const box = el('div', { className: 'target', dataset: { target } });
    box.append(el('h3', { textContent: component ? `${target} (${component.kind})` : `${target} (bus or line)` }));
    const kinds = el('div', { className: 'kinds', role: 'group', 'aria-label': `Faults of ${target}` });
    for (const { kind, description } of view.catalogue[target]) {
      const button = el('button', { type: 'button', textContent: kind, title: description, 'aria-label': `${kind} on ${target}`, 'aria-pressed': 'false', dataset: { target, kind } });
      button.addEventListener('click', () => void toggleFault(target, kind));
      kinds.append(button);
    }
    box.append(kinds);
    return box;
  });
  $('targets').replaceChildren(...boxes);
}

function renderFaults() {
  const active = activeFaults();
  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ ($('targets').querySelectorAll('button[data-kind]'))) {
    const on = active.some((f) => f.target === button.dataset.target && f.kind === button.dataset.kind);
    if (button.getAttribute('aria-pressed') !== String(on)) button.setAttribute('aria-pressed', String(on));
  }
  const items = active.length > 0 ? active : [{ id: '' }];
  keyed(
    $('active-faults'),
    items,
    (f) => f.id,
    (f) => {
      if (!f.id) return el('li', { className: 'empty', textContent: 'none' });
      const button = el('button', { type: 'button', textContent: 'Clear', 'aria-label': `Clear fault ${f.id}, ${f.kind} on ${f.target}` });
      button.addEventListener('click', () => void api('DELETE', `/faults/${encodeURIComponent(f.id)}`));
      return el('li', { dataset: { fault: f.id } }, el('span', { className: 'mono' }), button);
    },
    (li, f) => {
      if (!f.id) return;
      const when = f.startedAt === undefined || f.startedAt === null ? 'scheduled' : `since ${formatTime(f.startedAt)}`;
      const params = Object.keys(f.params ?? {}).length ? ` ${JSON.stringify(f.params)}` : '';
      const left = f.remaining === undefined || f.remaining === null ? '' : `, ${f.remaining} op(s) left`;
      const lasts = f.spec?.durationMs ? `, for ${f.spec.durationMs} ms` : '';
      setText(li.firstChild, `${f.id}: ${f.kind} on ${f.target}${params} - ${when}${lasts}${left}`);
    },
  );
  const scenarios = view.status?.scenarios ?? [];
  keyed(
    $('scenarios'),
    scenarios.length > 0 ? [...scenarios].reverse() : [{ id: '' }],
    (s) => s.id,
    (s) => (s.id ? el('li', { dataset: { scenario: s.id } }) : el('li', { className: 'empty', textContent: 'no scenario played yet' })),
    (li, s) => {
      if (!s.id) return;
      const now = boardNow();
      const progress = s.state === 'playing' && s.endsAt > s.startedAt ? ` ${Math.min(100, Math.round(((now - s.startedAt) / (s.endsAt - s.startedAt)) * 100))}%` : '';
      const errors = s.errors.length ? ` - ${s.errors.length} step error(s): ${s.errors.map((e) => `#${e.step} ${e.message}`).join('; ')}` : '';
      li.dataset.state = s.state;
      setText(li, `${s.id} "${s.name}": ${s.steps} step(s), ${s.state}${progress}, ends ${formatTime(s.endsAt)}${errors}`);
    },
  );
}

async function playScenario(event) {
  event.preventDefault();
  const file = /** @type {HTMLInputElement} */ ($('scenario-file')).files?.[0];
  if (!file) {
    notice('Choose a scenario file first.');
    return;
  }
  const text = await file.text();
  const result = await api('POST', '/scenario', text);
  if (result) notice(`Playing "${result.name}": ${result.steps} step(s) until ${formatTime(result.endsAt)} on the board clock.`);
}

// ---- chart ----------------------------------------------------------------------------------

function quantities() {
  const seen = new Set();
  for (const sample of view.history) for (const [id, values] of Object.entries(sample.readings)) for (const name of Object.keys(values)) seen.add(`${id}.${name}`);
  return [...seen];
}

function renderQuantityOptions() {
  const select = /** @type {HTMLSelectElement} */ ($('quantity'));
  const all = quantities();
  const current = [...select.options].map((o) => o.value);
  if (all.length === current.length && all.every((q, i) => q === current[i])) return;
  if (!view.quantity || !all.includes(view.quantity)) {
    view.quantity = all.find((q) => q.endsWith('.temperatureC')) ?? all[0] ?? '';
  }
  select.replaceChildren(...all.map((q) => el('option', { value: q, textContent: q.replace('.', ' '), selected: q === view.quantity })));
}

function renderChart() {
  renderQuantityOptions();
  const plot = $('plot');
  const width = Math.max(320, plot.clientWidth || 800);
  const height = 240;
  plot.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const m = { left: 64, right: 14, top: 10, bottom: 44 };
  const strip = { top: height - m.bottom + 8, height: 10 };
  const innerW = width - m.left - m.right;
  const innerH = height - m.top - m.bottom;
  const nodes = [];
  const [component, name] = view.quantity.split('.');
  const samples = view.history;
  if (samples.length === 0 || !component) {
    nodes.push(svg('text', { x: m.left, y: m.top + 20 }, 'no samples yet'));
    plot.replaceChildren(...nodes);
    setText($('plot-summary'), 'No samples yet: the page samples the components while it is open.');
    return;
  }
  const t0 = samples[0].at;
  const latestDecision = view.decisions.length ? view.decisions[view.decisions.length - 1].at : t0;
  const t1 = Math.max(samples[samples.length - 1].at, latestDecision, t0 + 1);
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * innerW;
  const values = samples.map((s) => s.readings[component]?.[name]).filter((v) => typeof v === 'number');
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (hi - lo < 1e-9) {
    lo -= 1;
    hi += 1;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const y = (v) => m.top + (1 - (v - lo) / (hi - lo)) * innerH;

  samples.forEach((s, i) => {
    if (s.states[component] !== 'failed') return;
    const next = samples[i + 1]?.at ?? s.at + view.sampleMs;
    nodes.push(svg('rect', { class: 'band', x: x(s.at), y: m.top, width: Math.max(1, x(Math.min(next, t1)) - x(s.at)), height: innerH }));
  });
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    nodes.push(svg('line', { class: 'grid-line', x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
    nodes.push(svg('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatValue(Number(v.toPrecision(4)))));
  }
  nodes.push(svg('line', { class: 'axis', x1: m.left, x2: m.left, y1: m.top, y2: m.top + innerH }));
  nodes.push(svg('line', { class: 'axis', x1: m.left, x2: width - m.right, y1: m.top + innerH, y2: m.top + innerH }));
  let d = '';
  let pen = false;
  for (const s of samples) {
    const v = s.readings[component]?.[name];
    if (typeof v !== 'number') {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${x(s.at).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  if (d) nodes.push(svg('path', { class: 'series', d }));

  let accepted = 0;
  let cut = 0;
  for (const decision of view.decisions) {
    if (decision.at < t0 || decision.at > t1) continue;
    const ok = decision.action === 'accept';
    if (ok) accepted += 1;
    else cut += 1;
    const px = x(decision.at);
    nodes.push(svg('line', { class: ok ? 'tick-ok' : 'tick-bad', x1: px, x2: px, y1: strip.top, y2: strip.top + strip.height }));
  }
  nodes.push(svg('text', { x: m.left - 6, y: strip.top + 9, 'text-anchor': 'end' }, 'gate'));
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    const anchor = t === t0 ? 'start' : t === t1 ? 'end' : 'middle';
    nodes.push(svg('text', { x: x(t), y: height - 6, 'text-anchor': anchor }, formatTime(t)));
  }
  plot.replaceChildren(...nodes);
  const last = values[values.length - 1];
  setText(
    $('plot-summary'),
    values.length
      ? `${component} ${name}: last ${formatValue(last)}, min ${formatValue(Math.min(...values))}, max ${formatValue(Math.max(...values))} over ${samples.length} samples from ${formatTime(t0)} to ${formatTime(t1)}; gate: ${accepted} accepted, ${cut} reset or closed.`
      : `${component} ${name}: no reading in ${samples.length} samples (the component failed); gate: ${accepted} accepted, ${cut} reset or closed.`,
  );
}

// ---- wiring ---------------------------------------------------------------------------------

function renderStatus(status) {
  view.status = status;
  renderHeader(status);
  renderComponents(status);
  renderNic(status);
  renderWatchdog(status);
  renderGpio(status);
  renderServices(status);
  if (view.features.faults) renderFaults();
}

function applySnapshot(snapshot) {
  view.features = snapshot.features;
  view.catalogue = snapshot.catalogue;
  view.gpioLines = snapshot.gpioLines;
  view.decisions = snapshot.decisions;
  view.history = snapshot.history;
  view.sampleMs = snapshot.sampleMs;
  view.status = snapshot.status;
  $('fault-controls').hidden = !snapshot.features.faults;
  $('faults-readonly').hidden = snapshot.features.faults;
  $('speed-buttons').hidden = !snapshot.features.clock;
  setText($('sample-hint'), `While this page is open every component is diagnosed every ${snapshot.sampleMs / 1000} s (this counts against a fault's "times").`);
  if (snapshot.features.faults) buildFaultTargets();
  renderStatus(snapshot.status);
  renderDecisions();
  renderChart();
}

let chartFrame;
/** A burst of decisions redraws the chart once per frame. */
function scheduleChart() {
  cancelAnimationFrame(chartFrame);
  chartFrame = requestAnimationFrame(renderChart);
}

function connect() {
  const connection = $('connection');
  const source = new EventSource('/events');
  source.addEventListener('open', () => {
    connection.className = 'connection live';
    setText(connection, 'live');
  });
  source.addEventListener('error', () => {
    connection.className = 'connection down';
    setText(connection, 'reconnecting');
  });
  source.addEventListener('snapshot', (e) => applySnapshot(JSON.parse(e.data)));
  source.addEventListener('status', (e) => renderStatus(JSON.parse(e.data)));
  source.addEventListener('decision', (e) => {
    addDecision(JSON.parse(e.data));
    scheduleChart();
  });
  source.addEventListener('sample', (e) => {
    view.history.push(JSON.parse(e.data));
    if (view.history.length > 900) view.history.shift();
    renderChart();
  });
}

function init() {
  for (const speed of speeds) {
    const button = el('button', { type: 'button', textContent: `${speed} x`, 'aria-label': `Clock speed ${speed} times`, 'aria-pressed': 'false', dataset: { speed: String(speed) } });
    button.addEventListener('click', () => void api('POST', '/clock', { speed }));
    $('speed-buttons').append(button);
  }
  $('clear-all').addEventListener('click', () => void api('DELETE', '/faults'));
  $('stop-scenarios').addEventListener('click', () => void api('DELETE', '/scenario'));
  $('scenario-form').addEventListener('submit', (event) => void playScenario(event));
  $('quantity').addEventListener('change', (event) => {
    view.quantity = /** @type {HTMLSelectElement} */ (event.target).value;
    renderChart();
  });
  window.addEventListener('resize', scheduleChart);
  connect();
}

init();
