/**
 * The dashboard with a fleet, in headless Chromium (Debian `chromium` driven by playwright-core, as in
 * dashboard.test.ts): 1000 targets over loopback listeners that answer the way an appliance's gate
 * does (a plain listener is `up`; one that sends RST at once is what an after-mode gate with
 * `onFail: reset` does, firmware/gate/after.ts; one that sends FIN is `onFail: close`; a port nobody
 * listens on is `refused`). The list is ordered worst first, grouped by label with an overview, its
 * counts follow the filter, only the rows in view are in the DOM, a target has a page with its
 * history from the database, and /favicon.ico is served. A screenshot of the grouped view goes to
 * test-artifacts/; with HANDCHECK_UPDATE_SCREENSHOTS=1 also to docs/monitor-dashboard-fleet.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StateStyle, stateOrder, statePalette } from '../../monitor/dashboard.js';
import { type MonitorHttpServer, startMonitorHttp } from '../../monitor/http.js';
import type { Monitor } from '../../monitor/monitor.js';
import type { TargetState } from '../../monitor/state.js';
import { silent } from '../helpers/log.js';
import { EventStream } from '../ui/harness.js';
import { reach, startMonitor, tempDir } from './helpers.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/wait.js';

const ROOT = join(import.meta.dirname, '..', '..');

type Behaviour = 'accept' | 'reset' | 'close';

/** A loopback listener answering every connection the way `behaviour()` says at that moment. */
async function listener(behaviour: () => Behaviour): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const now = behaviour();
    if (now === 'reset') return void socket.resetAndDestroy();
    if (now === 'close') return void socket.end();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}


const sites = ['osaka', 'kyoto', 'nagoya', 'sendai'];
const TOTAL = 1000;

/** Visible target rows in the order they are drawn, top to bottom, as `name:state`. */
async function shownRows(page: Page): Promise<string[]> {
  return page.evaluate(`Array.from(document.querySelectorAll('#list .row')).sort((a, b) => a.offsetTop - b.offsetTop).map((r) => r.dataset.target + ':' + r.dataset.state)`);
}

describe('dashboard for a fleet of 1000 targets', () => {
  let monitor: Monitor;
  let http: MonitorHttpServer;
  let browser: Browser;
  let base: string;
  let flapper: Behaviour = 'accept';
  const servers: Server[] = [];
  const temp = tempDir();

  beforeAll(async () => {
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    const up = await listener(() => 'accept');
    const resets = await listener(() => 'reset');
    const closes = await listener(() => 'close');
    const flapping = await listener(() => flapper);
    servers.push(up.server, resets.server, closes.server, flapping.server);
    const refused = await freePort();
    // 1000 targets, four of them not up, spread through the alphabet and the sites; two of them
    // named so that numeric order is not the order of characters.
    const special: Record<number, { port: number; name: string }> = {
      17: { port: refused, name: 'pump-0017' },
      230: { port: resets.port, name: 'pump-1230' },
      512: { port: closes.port, name: 'pump-0512' },
      999: { port: resets.port, name: 'pump-999' },
    };
    const targets = Array.from({ length: TOTAL }, (_, i) => ({
      name: special[i]?.name ?? `pump-${String(i).padStart(4, '0')}`,
      address: `127.0.0.1:${special[i]?.port ?? up.port}`,
      labels: { site: sites[i % sites.length]!, line: `line-${Math.floor(i / 4) % 2}`, rack: `r${i % 100}` },
    }));
    // One target probed often, to give it a history; the rest once an hour, their first probes
    // spread over the first 3 s. A grace of 2 s, so that a loaded machine's late FIN is still seen.
    targets[3] = { ...targets[3]!, name: 'flapper', address: `127.0.0.1:${flapping.port}` };
    let phase = 0;
    monitor = startMonitor(
      {
        db: join(temp.dir, 'monitor.db'),
        defaults: { intervalMs: 3_600_000, graceMs: 2000 },
        targets: targets.map((t) => (t.name === 'flapper' ? { ...t, intervalMs: 400, graceMs: 300 } : t)),
      },
      { random: () => (3 * (phase++ % TOTAL)) / 3_600_000 },
    );
    http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent, batchMs: 50 });
    base = `http://127.0.0.1:${http.address.port}`;
    const first: Array<[string, TargetState]> = [['pump-0017', 'refused'], ['pump-1230', 'reset'], ['pump-0512', 'closed'], ['pump-999', 'reset'], ['flapper', 'up']];
    await Promise.all(first.map(([name, state]) => reach(monitor, name, state, 15_000)));
    await until(() => monitor.snapshot().every((t) => t.state !== 'unknown'), 'every target to have its first result', 120_000);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await http?.close();
    await monitor?.close();
    for (const server of servers) server.close();
    temp.remove();
  });

  async function open(query = '', viewport = { width: 1400, height: 900 }): Promise<{ page: Page; errors: string[]; failed: string[] }> {
    const page = await browser.newPage({ viewport });
    const errors: string[] = [];
    const failed: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('response', (response) => {
      if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(`${base}/${query}`);
    await page.waitForSelector('body[data-ready="1"]');
    return { page, errors, failed };
  }

  it('lists the worst states first, then by name, with a glyph and the state in words', async () => {
    const { page, errors } = await open();
    try {
      const rows = await shownRows(page);
      // stateOrder: unreachable, timeout, refused, reset, closed, lost, error, unknown, up.
      expect(rows.slice(0, 6)).toEqual(['pump-0017:refused', 'pump-999:reset', 'pump-1230:reset', 'pump-0512:closed', 'flapper:up', 'pump-0000:up']);
      expect(rows.slice(6, 8)).toEqual(['pump-0001:up', 'pump-0002:up']);
      expect(await page.textContent('[data-target="pump-1230"] .badge')).toBe(`${statePalette.reset.glyph}reset`);
      expect(await page.textContent('#n-total')).toBe('1000 targets');
      expect(await page.textContent('#n-down')).toBe('4 down');
      expect(await page.textContent('#n-up')).toBe('996 up');
      expect(await page.textContent('#n-states [data-state="reset"]')).toBe(`${statePalette.reset.glyph}2 reset`);
      expect(await page.title()).toBe('4 down - handcheck monitor');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('keeps only the rows in view in the DOM, however many targets, and scrolls to the last one', async () => {
    const { page, errors } = await open();
    try {
      const inDom = async (): Promise<number> => page.evaluate('document.querySelectorAll("[data-target]").length');
      // 900 px of window holds about 20 rows of 40 px; a few more either side are drawn ahead.
      expect(await inDom()).toBeGreaterThan(10);
      expect(await inDom()).toBeLessThanOrEqual(40);
      expect(await page.evaluate('document.getElementById("list").offsetHeight')).toBe(TOTAL * 40);
      await page.evaluate('window.scrollTo(0, document.body.scrollHeight)');
      await page.waitForSelector('[data-target="pump-0998"]');
      expect(await inDom()).toBeLessThanOrEqual(40);
      expect((await shownRows(page)).at(-1)).toBe('pump-0998:up');
      expect(await page.$('[data-target="pump-0017"]')).toBeNull();
      await page.evaluate('window.scrollTo(0, 0)');
      await page.waitForSelector('[data-target="pump-0017"]');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('counts in the header follow the filter; the state list narrows the rows, not the counts', async () => {
    const { page, errors } = await open();
    try {
      // Target i is at site i % 4 (osaka, kyoto, nagoya, sendai) on line floor(i / 4) % 2.
      await page.fill('#filter', 'site=kyoto');
      expect(await page.textContent('#n-total')).toBe('250 of 1000 targets');
      expect(await page.textContent('#n-down')).toBe('1 down');
      expect(await page.textContent('#n-up')).toBe('249 up');
      expect(await page.textContent('#n-states')).toBe(`${statePalette.refused.glyph}1 refused`);
      await page.fill('#filter', 'site=kyoto line=line-1');
      expect(await page.textContent('#n-total')).toBe('125 of 1000 targets');
      expect(await page.textContent('#n-down')).toBe('0 down');
      expect(await page.textContent('#n-states')).toBe('');
      await page.fill('#filter', 'line=line-0');
      await page.selectOption('#state-filter', 'down');
      expect(await shownRows(page)).toEqual(['pump-0017:refused', 'pump-0512:closed']);
      expect(await page.textContent('#n-total')).toBe('500 of 1000 targets');
      expect(await page.textContent('#n-up')).toBe('498 up');
      await page.fill('#filter', 'pump-12');
      expect(await shownRows(page)).toEqual(['pump-1230:reset']);
      expect(await page.textContent('#n-total')).toBe('1 of 1000 targets');
      await page.fill('#filter', 'site=nowhere');
      expect(await shownRows(page)).toEqual([]);
      expect(await page.textContent('#n-total')).toBe('0 of 1000 targets');
      expect(await page.isVisible('#empty')).toBe(true);
      const url = new URL(page.url());
      expect([url.searchParams.get('filter'), url.searchParams.get('state')]).toEqual(['site=nowhere', 'down']);
      // The title speaks for the whole fleet.
      expect(await page.title()).toBe('4 down - handcheck monitor');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('groups by label with an overview of the counts per state, worst group first', async () => {
    const { page, errors } = await open();
    try {
      await page.selectOption('#group-1', 'site');
      const cards = async (): Promise<string[]> =>
        page.evaluate(`Array.from(document.querySelectorAll('#overview .card')).map((c) => c.dataset.group + ' ' + Array.from(c.querySelectorAll('.n')).map((n) => n.dataset.state + '=' + n.textContent.split(' ')[1]).join(' '))`);
      // By the worst state in the group, then by name: kyoto (refused), nagoya and sendai (reset), osaka (closed).
      const expected = new Map<string, Map<TargetState, number>>();
      for (const t of monitor.snapshot()) {
        const site = `site=${t.labels.site!}`;
        const counts = expected.get(site) ?? new Map<TargetState, number>();
        counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
        expected.set(site, counts);
      }
      const rank = (counts: Map<TargetState, number>): number => Math.min(...[...counts.keys()].map((s) => stateOrder.indexOf(s)));
      const order = [...expected.entries()].sort((a, b) => rank(a[1]) - rank(b[1]) || (a[0] < b[0] ? -1 : 1));
      expect(await cards()).toEqual(order.map(([site, counts]) => `${site} ${stateOrder.filter((s) => counts.has(s)).map((s) => `${s}=${counts.get(s)}`).join(' ')}`));
      expect(order[0]![0]).toBe('site=kyoto');
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'monitor-dashboard-fleet.png') });
      if (process.env.HANDCHECK_UPDATE_SCREENSHOTS === '1') await page.screenshot({ path: join(ROOT, 'docs', 'monitor-dashboard-fleet.png') });
      const first = await page.evaluate(`Array.from(document.querySelectorAll('#list > *')).sort((a, b) => a.offsetTop - b.offsetTop).slice(0, 4).map((r) => r.dataset.group || r.dataset.target)`);
      expect(first).toEqual(['site=kyoto', 'pump-0017', 'pump-0001', 'pump-0005']);
      const top = `Array.from(document.querySelectorAll('#list > *')).sort((a, b) => a.offsetTop - b.offsetTop).slice(0, 4).map((r) => r.dataset.group || r.dataset.target)`;
      // A group's header folds its rows away, and unfolds them.
      await page.click('.group-row[data-group="site=kyoto"]');
      expect(await page.evaluate(top)).toEqual(['site=kyoto', 'site=nagoya', 'pump-1230', 'pump-0002']);
      expect(await page.getAttribute('.group-row[data-group="site=kyoto"]', 'aria-expanded')).toBe('false');
      expect(await page.evaluate('document.getElementById("list").offsetHeight')).toBe((TOTAL - 250 + 4) * 40);
      await page.click('.group-row[data-group="site=kyoto"]');
      expect(await page.evaluate(top)).toEqual(first);
      await page.selectOption('#group-2', 'line');
      expect((await cards()).slice(0, 2)).toEqual(['site=kyoto line=line-0 refused=1 up=124', 'site=nagoya line=line-1 reset=1 up=124']);
      expect(new URL(page.url()).searchParams.get('group')).toBe('site,line');
      // A card is a shortcut to its group.
      await page.click('#overview .card[data-group="site=osaka line=line-0"]');
      expect(await page.inputValue('#filter')).toBe('site=osaka line=line-0');
      expect(await page.textContent('#n-total')).toBe('125 of 1000 targets');
      expect(await page.locator('#overview .card').count()).toBe(1);
      // A hundred racks: the overview shows sixty and says how many more there are.
      await page.fill('#filter', '');
      await page.selectOption('#group-2', '');
      await page.selectOption('#group-1', 'rack');
      expect(await page.locator('#overview button.card').count()).toBe(60);
      expect(await page.textContent('#overview .card.more')).toBe('and 40 more groups: filter to see them');
      expect(await page.evaluate('document.querySelectorAll("#list .group-row").length')).toBeLessThanOrEqual(40);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
    // A bookmarked view comes back as it was.
    const bookmarked = await open('?group=site,line&state=down');
    try {
      expect([await bookmarked.page.inputValue('#group-1'), await bookmarked.page.inputValue('#group-2'), await bookmarked.page.inputValue('#state-filter')]).toEqual(['site', 'line', 'down']);
      const drawn = await bookmarked.page.evaluate(`Array.from(document.querySelectorAll('#list > *')).sort((a, b) => a.offsetTop - b.offsetTop).map((r) => r.dataset.group || r.dataset.target)`);
      expect(drawn).toEqual(['site=kyoto line=line-0', 'pump-0017', 'site=nagoya line=line-1', 'pump-1230', 'site=sendai line=line-1', 'pump-999', 'site=osaka line=line-0', 'pump-0512']);
    } finally {
      await bookmarked.page.close();
    }
  });

  it('shows one target on its own page with its history from the database, live', async () => {
    flapper = 'reset';
    await reach(monitor, 'flapper', 'reset');
    flapper = 'accept';
    await reach(monitor, 'flapper', 'up');
    const { page, errors } = await open('?filter=flapper');
    try {
      await page.click('[data-target="flapper"] .name a');
      expect(new URL(page.url()).hash).toBe('#target=flapper');
      await page.waitForSelector('#detail[data-loaded="flapper"]');
      expect(await page.isVisible('#list-view')).toBe(false);
      expect(await page.textContent('#d-name')).toBe('flapper');
      expect(await page.textContent('#d-badge')).toBe(`${statePalette.up.glyph}up`);
      const history = async (): Promise<string[]> => page.evaluate(`Array.from(document.querySelectorAll('#d-history tbody tr')).map((r) => r.dataset.to + ': ' + r.querySelector('.reason').textContent)`);
      const recorded = monitor.history.forTarget('flapper');
      expect(await history()).toEqual(recorded.reverse().map((t) => `${t.to}: ${t.reason}`));
      expect((await history()).map((h) => h.split(':')[0])).toEqual(['up', 'reset', 'up']);
      expect(await page.textContent('#d-history tbody tr:nth-child(2) .reason')).toMatch(/^RST /);
      // A transition while the page is open arrives on it.
      flapper = 'close';
      await page.waitForSelector('#d-history tbody tr:first-child[data-to="closed"]', { timeout: 5000 });
      expect(await page.textContent('#d-badge')).toBe(`${statePalette.closed.glyph}closed`);
      expect(await page.textContent('#d-reason')).toMatch(/^FIN /);
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'monitor-dashboard-target.png'), fullPage: true });
      flapper = 'accept';
      await page.click('#back');
      await page.waitForSelector('#list-view:not([hidden])');
      await page.goto(`${base}/#target=${encodeURIComponent('no such target')}`);
      await page.waitForSelector('body[data-ready="1"]');
      expect(await page.isVisible('#d-missing')).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('sends a page only the fields of a target that changed, and all of a target it may have seen change', async () => {
    type Change = Record<string, unknown> & { name: string };
    const { stream } = await EventStream.open(`${base}/events`);
    try {
      const snapshot = await stream.next<{ targets: Change[] }>('snapshot');
      expect(snapshot.targets).toHaveLength(TOTAL);
      // The first batch after a page connects carries each changed target whole.
      const whole = await stream.next<{ targets: Change[] }>('update', (u) => u.targets.some((t) => t.name === 'flapper'));
      expect(whole.targets.find((t) => t.name === 'flapper')).toMatchObject({ name: 'flapper', labels: { site: 'sendai', line: 'line-0' }, state: 'up' });
      const next = await stream.next<{ targets: Change[] }>('update', (u) => u.targets.some((t) => t.name === 'flapper'));
      const change = next.targets.find((t) => t.name === 'flapper')!;
      expect(Object.keys(change).filter((k) => !['name', 'reason', 'connectMs'].includes(k))).toEqual([]);
      flapper = 'reset';
      const reset = await stream.next<{ targets: Change[]; transitions: Array<{ target: string; to: string }> }>('update', (u) => u.targets.some((t) => t.name === 'flapper' && t.state === 'reset'));
      expect(reset.transitions.filter((t) => t.target === 'flapper').map((t) => t.to)).toEqual(['reset']);
      flapper = 'accept';
      await stream.next<{ targets: Change[] }>('update', (u) => u.targets.some((t) => t.name === 'flapper' && t.state === 'up'));
    } finally {
      flapper = 'accept';
      stream.close();
    }
  });

  it('serves /favicon.ico, and the page makes no request that fails', async () => {
    const response = await fetch(`${base}/favicon.ico`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/x-icon');
    const bytes = Buffer.from(await response.arrayBuffer());
    // ICONDIR: reserved 0, type 1 (icon), one image of 32 x 32 at 32 bits per pixel.
    expect([bytes.readUInt16LE(0), bytes.readUInt16LE(2), bytes.readUInt16LE(4), bytes[6], bytes[7], bytes.readUInt16LE(12)]).toEqual([0, 1, 1, 32, 32, 32]);
    expect(bytes.readUInt32LE(14) + bytes.readUInt32LE(18)).toBe(bytes.length);
    const { page, failed } = await open();
    try {
      await page.waitForFunction(`Array.from(document.querySelectorAll('link[rel=icon]')).length === 1`);
      const icon = await page.evaluate(`fetch(document.querySelector('link[rel=icon]').href).then((r) => r.status + ' ' + r.headers.get('content-type'))`);
      expect(icon).toBe('200 image/x-icon');
      expect(failed).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('draws every state in its own colour and glyph, as the palette says', async () => {
    const { page } = await open();
    try {
      const drawn = (await page.evaluate(`Array.from(document.querySelectorAll('#legend .glyph')).map((g) => [g.className.split('s-')[1], getComputedStyle(g).backgroundColor, g.textContent])`)) as Array<[string, string, string]>;
      const rgb = (hex: string): string => `rgb(${[1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(', ')})`;
      expect(drawn).toEqual(stateOrder.map((s) => [s, rgb(statePalette[s].colour), statePalette[s].glyph]));
    } finally {
      await page.close();
    }
  });
});

/**
 * Colour vision deficiency simulated with the matrices of Machado, Oliveira and Fernandes (2009,
 * severity 1.0), in linear RGB; distance in CIELAB (CIE76). 15 is well past "different at a glance"
 * (about 2.3 is just noticeable).
 */
describe('state palette', () => {
  const matrices: Record<string, number[][]> = {
    normal: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    protanopia: [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    deuteranopia: [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.01182, 0.04294, 0.968881]],
    tritanopia: [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.3039]],
  };
  const linear = (c: number): number => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const lab = ([r, g, b]: number[]): number[] => {
    const f = (t: number): number => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
    const x = f((0.4124 * r! + 0.3576 * g! + 0.1805 * b!) / 0.95047);
    const y = f(0.2126 * r! + 0.7152 * g! + 0.0722 * b!);
    const z = f((0.0193 * r! + 0.1192 * g! + 0.9505 * b!) / 1.08883);
    return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
  };
  const seen = (style: StateStyle, m: number[][]): number[] => {
    const rgb = [1, 3, 5].map((i) => linear(parseInt(style.colour.slice(i, i + 2), 16) / 255));
    return lab(m.map((row) => Math.min(1, Math.max(0, row.reduce((sum, k, j) => sum + k * rgb[j]!, 0)))));
  };

  it.each(Object.keys(matrices))('tells every two states apart with %s vision', (vision) => {
    const states = Object.keys(statePalette) as TargetState[];
    const closest: Array<[number, string]> = [];
    for (const a of states) {
      for (const b of states) {
        if (a >= b) continue;
        const d = Math.hypot(...seen(statePalette[a], matrices[vision]!).map((v, i) => v - seen(statePalette[b], matrices[vision]!)[i]!));
        closest.push([d, `${a}/${b}`]);
      }
    }
    closest.sort((x, y) => x[0] - y[0]);
    expect(closest[0]![0], `closest pair ${closest[0]![1]}`).toBeGreaterThanOrEqual(15);
  });

  it('gives every state its own glyph, and orders every state', () => {
    const glyphs = Object.values(statePalette).map((s) => s.glyph);
    expect(new Set(glyphs).size).toBe(glyphs.length);
    expect([...stateOrder].sort()).toEqual(Object.keys(statePalette).sort());
  });
});
