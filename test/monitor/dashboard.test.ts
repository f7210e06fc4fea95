/**
 * The monitor's HTTP endpoint and its dashboard in headless Chromium (Debian `chromium` driven by
 * playwright-core): every target listed with its state, a fault turns its row, the label filter, the
 * page asks nothing of anyone but the monitor; /metrics and the JSON API over real HTTP. A screenshot
 * goes to test-artifacts/; with HANDCHECK_UPDATE_SCREENSHOTS=1 also to docs/monitor-dashboard.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { statePalette } from '../../monitor/dashboard.js';
import { type MonitorHttpServer, startMonitorHttp } from '../../monitor/http.js';
import type { Monitor } from '../../monitor/monitor.js';
import { applianceConfig, startAppliance } from '../firmware/helpers.js';
import { silent } from '../helpers/log.js';
import { reach, startMonitor } from './helpers.js';
import { freePort } from '../helpers/ports.js';

const ROOT = join(import.meta.dirname, '..', '..');


describe('dashboard and HTTP endpoint', () => {
  let osaka: Appliance;
  let kyoto: Appliance;
  let monitor: Monitor;
  let http: MonitorHttpServer;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const a = await startAppliance(applianceConfig({ recheckMs: 100 }));
    const b = await startAppliance(applianceConfig({ recheckMs: 0 }));
    osaka = a.appliance;
    kyoto = b.appliance;
    monitor = startMonitor({
      defaults: { intervalMs: 200, graceMs: 80 },
      targets: [
        { name: 'osaka-pump-1', address: `127.0.0.1:${a.port}`, labels: { site: 'osaka', rack: '1' } },
        { name: 'osaka-pump-2', address: `127.0.0.1:${a.port}`, mode: 'hold', labels: { site: 'osaka', rack: '2' } },
        { name: 'kyoto-pump-1', address: `127.0.0.1:${b.port}`, labels: { site: 'kyoto', rack: '1' } },
        { name: 'kyoto-spare', address: `127.0.0.1:${await freePort()}`, labels: { site: 'kyoto', rack: '2' } },
      ],
    });
    http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent, batchMs: 100 });
    base = `http://127.0.0.1:${http.address.port}`;
    await Promise.all([reach(monitor, 'osaka-pump-1', 'up'), reach(monitor, 'osaka-pump-2', 'up'), reach(monitor, 'kyoto-pump-1', 'up'), reach(monitor, 'kyoto-spare', 'refused')]);
    // A short outage before the page opens, so the timelines have a history to draw.
    kyoto.board.sim!.faults.inject({ target: 'eth0', kind: 'carrier-down' });
    await reach(monitor, 'kyoto-pump-1', 'reset');
    kyoto.board.sim!.faults.clearAll();
    await reach(monitor, 'kyoto-pump-1', 'up', 5000);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await http?.close();
    await monitor?.close();
    await osaka?.stop();
    await kyoto?.stop();
  });

  it('serves Prometheus metrics with the target labels on every series', async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('handcheck_monitor_target_up{target="osaka-pump-1",rack="1",site="osaka"} 1');
    expect(text).toContain('handcheck_monitor_target_up{target="kyoto-spare",rack="2",site="kyoto"} 0');
    expect(text).toContain('handcheck_monitor_target_state{target="kyoto-spare",rack="2",site="kyoto",state="refused"} 1');
    expect(text).not.toContain('handcheck_monitor_target_state{target="kyoto-spare",rack="2",site="kyoto",state="up"}');
    expect(text).toContain('handcheck_monitor_transitions_total{target="kyoto-pump-1",rack="1",site="kyoto",from="up",to="reset"} 1');
    expect(text).toMatch(/handcheck_monitor_connect_duration_seconds_count\{target="osaka-pump-1",rack="1",site="osaka"\} [1-9]/);
    expect(text).toMatch(/handcheck_monitor_target_last_change_timestamp_seconds\{target="osaka-pump-1",rack="1",site="osaka"\} 1[\d.]+/);
    expect(text).toContain(`handcheck_monitor_target_info{target="osaka-pump-2",rack="2",site="osaka",host="127.0.0.1",port="${monitor.target('osaka-pump-2')!.port}",mode="hold"} 1`);
    expect(text).toMatch(/handcheck_monitor_results_total\{target="kyoto-spare",rack="2",site="kyoto",result="refused"\} [1-9]/);
  });

  it('serves the targets and their history as JSON, and 404 with a code for what it does not have', async () => {
    const targets = (await (await fetch(`${base}/api/targets`)).json()) as { targets: Array<{ name: string; state: string }> };
    expect(targets.targets.map((t) => `${t.name}:${t.state}`).sort()).toEqual(['kyoto-pump-1:up', 'kyoto-spare:refused', 'osaka-pump-1:up', 'osaka-pump-2:up']);
    const history = (await (await fetch(`${base}/api/targets/kyoto-pump-1/history`)).json()) as { transitions: Array<{ from: string; to: string }> };
    expect(history.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['unknown->up', 'up->reset', 'reset->up']);
    const missing = await fetch(`${base}/api/targets/nope/history`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'ERR_MONITOR_HTTP_NOT_FOUND' } });
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('lists every target with its state, turns a row on a fault, filters by label, asks no one else', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 420 } });
    const foreign: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(base)) foreign.push(request.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    const updateDocs = process.env.HANDCHECK_UPDATE_SCREENSHOTS === '1';
    try {
      // The picture for the README wants timelines with more than a few seconds of history.
      if (updateDocs) await new Promise((resolve) => setTimeout(resolve, 8000));
      await page.goto(base);
      await page.waitForSelector('body[data-ready="1"]');
      // As drawn, top to bottom; the list is ordered worst state first, then by name.
      const rows = async (): Promise<string[]> =>
        page.evaluate(`Array.from(document.querySelectorAll('#list .row')).sort((a, b) => a.offsetTop - b.offsetTop).map((r) => r.dataset.target + ':' + r.dataset.state)`);
      expect(await rows()).toEqual(['kyoto-spare:refused', 'kyoto-pump-1:up', 'osaka-pump-1:up', 'osaka-pump-2:up']);
      expect(await page.textContent('[data-target="kyoto-spare"] .reason')).toBe('RST to the SYN');
      expect(await page.textContent('[data-target="osaka-pump-1"] .latency')).toMatch(/^[\d.]+ ms$/);
      expect(await page.textContent('#n-down')).toBe('1 down');
      // The outage before the page opened is on kyoto-pump-1's timeline: not watched, up, reset, up.
      const segments = await page.locator('[data-target="kyoto-pump-1"] .timeline i').all();
      expect(await Promise.all(segments.map((i) => i.getAttribute('class')))).toEqual(['s-unknown', 's-up', 's-reset', 's-up']);

      // The recheck resets the held connection of osaka-pump-2, and the probes of osaka-pump-1 are reset.
      osaka.board.sim!.faults.inject({ target: 'uplink-sfp', kind: 'los' });
      await page.waitForSelector('[data-target="osaka-pump-1"][data-state="reset"]', { timeout: 5000 });
      await page.waitForSelector('[data-target="osaka-pump-2"][data-state="reset"], [data-target="osaka-pump-2"][data-state="lost"]', { timeout: 5000 });
      expect(await page.getAttribute('[data-target="osaka-pump-1"]', 'class')).toBe('grid row state-reset down');
      expect(await page.textContent('[data-target="osaka-pump-1"] .badge')).toBe(`${statePalette.reset.glyph}reset`);
      expect(await page.textContent('[data-target="osaka-pump-1"] .reason')).toMatch(/^RST /);
      expect(await page.textContent('#n-down')).toBe('3 down');
      await page.waitForFunction('document.title.startsWith("3 down")');
      // Two frames, so that the screenshot shows what was rendered.
      await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'monitor-dashboard.png'), fullPage: true });
      if (updateDocs) await page.screenshot({ path: join(ROOT, 'docs', 'monitor-dashboard.png'), fullPage: true });

      await page.fill('#filter', 'site=kyoto');
      expect(await rows()).toEqual(['kyoto-spare:refused', 'kyoto-pump-1:up']);
      expect(new URL(page.url()).searchParams.get('filter')).toBe('site=kyoto');
      await page.fill('#filter', 'site=kyoto rack=2');
      expect(await rows()).toEqual(['kyoto-spare:refused']);
      await page.fill('#filter', '');
      await page.click('[data-target="osaka-pump-2"] .chip:text("rack=2")');
      expect(await page.inputValue('#filter')).toBe('rack=2');
      expect(await rows()).toEqual(['kyoto-spare:refused', 'osaka-pump-2:' + (await page.getAttribute('[data-target="osaka-pump-2"]', 'data-state'))]);
      await page.fill('#filter', '');
      await page.selectOption('#state-filter', 'down');
      expect((await rows()).map((r) => r.split(':')[0])).toEqual(['kyoto-spare', 'osaka-pump-1', 'osaka-pump-2']);
      await page.fill('#filter', 'nothing=here');
      expect(await rows()).toEqual([]);
      expect(await page.isVisible('#empty')).toBe(true);
      await page.fill('#filter', '');
      await page.selectOption('#state-filter', '');

      osaka.board.sim!.faults.clearAll();
      await page.waitForSelector('[data-target="osaka-pump-1"][data-state="up"]', { timeout: 5000 });
      await page.waitForSelector('[data-target="osaka-pump-2"][data-state="up"]', { timeout: 5000 });
      expect(await page.getAttribute('[data-target="osaka-pump-1"]', 'class')).toBe('grid row state-up');
      expect(await page.textContent('#n-down')).toBe('1 down');
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
