/**
 * The sim page's server side over real HTTP and real sockets, without a browser: the event stream,
 * scenario playback, the clock route, the token form and cookie, cross-origin refusal, and the
 * read-only page on a board without the fault API.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import { startControlServer } from '../../app/control.js';
import type { ComponentState } from '../../firmware/device-state.js';
import { type PageDecision, type PageSample, type PageSnapshot, type PageStatus, SimPage } from '../../app/sim-page.js';
import { open } from '../firmware/helpers.js';
import { settle } from '../helpers/settle.js';
import { EventStream, type PageAppliance, client, json, jsonType, startPageAppliance } from './harness.js';

let running: PageAppliance | undefined;
let stream: EventStream | undefined;

afterEach(async () => {
  stream?.close();
  stream = undefined;
  await running?.appliance.stop();
  running = undefined;
});

const component = (status: PageStatus, id: string): ComponentState => status.components.find((c) => c.id === id)!;

describe('GET /events', () => {
  it('sends a snapshot, then samples, fault effects and gate decisions as they happen', async () => {
    running = await startPageAppliance();
    const { base, port } = running;
    const opened = await EventStream.open(`${base}/events`);
    stream = opened.stream;
    expect(opened.response.statusCode).toBe(200);
    expect(opened.response.headers['content-type']).toBe('text/event-stream; charset=utf-8');

    const snapshot = await stream.next<PageSnapshot>('snapshot');
    expect(snapshot.status.board.id).toBe('sim-appliance');
    expect(snapshot.features).toEqual({ faults: true, scenarios: true, clock: true });
    expect(snapshot.catalogue['board-temp']!.map((k) => k.kind)).toEqual(expect.arrayContaining(['nack', 'bus-timeout', 'out-of-range', 'drift']));
    expect(snapshot.gpioLines['power-good']).toEqual({ direction: 'in', activeLow: false });
    expect(snapshot.status.services.map((s) => s.port)).toEqual([port]);

    // The page samples every component while it is open: the TMP102 model starts at its configured 41.5 C.
    const sample = await stream.next<PageSample>('sample');
    expect(sample.readings['board-temp']).toEqual({ temperatureC: 41.5 });
    expect(sample.states['board-temp']).toBe('ok');

    const injected = await json(await fetch(`${base}/faults`, { method: 'POST', headers: jsonType, body: JSON.stringify({ target: 'board-temp', kind: 'nack' }) }));
    expect(injected.status).toBe(201);
    const failed = await stream.next<PageStatus>('status', (s) => component(s, 'board-temp').state === 'failed');
    expect(component(failed, 'board-temp')).toMatchObject({ code: 'ERR_HAL_NACK', reason: expect.stringContaining('i2c-1@0x48') });
    expect(failed.sim!.faults.map((f) => [f.target, f.kind])).toEqual([['board-temp', 'nack']]);

    const cut = await client(port, 2000);
    expect(cut.result).toBe('reset');
    const { peer } = cut;
    const reset = await stream.next<PageDecision>('decision', (d) => d.peer === peer);
    expect(reset).toMatchObject({ service: 'modbus', action: 'reset', verdict: { ok: false, reused: false } });
    expect(reset.verdict!.failures.map((f) => f.component)).toEqual(['board-temp']);
    expect(reset.at).toBeGreaterThanOrEqual(snapshot.status.startedAt);

    await fetch(`${base}/faults/${injected.body.id as string}`, { method: 'DELETE' });
    await stream.next<PageStatus>('status', (s) => component(s, 'board-temp').state === 'ok');
    const healthy = await open(port);
    const healthyPeer = `127.0.0.1:${healthy.localPort}`;
    const accepted = await stream.next<PageDecision>('decision', (d) => d.peer === healthyPeer);
    expect(accepted).toMatchObject({ action: 'accept', verdict: { ok: true } });
    healthy.destroy();
  });

  it('keeps the decisions and samples for a page opened later', async () => {
    running = await startPageAppliance();
    const { base, port } = running;
    const first = (await EventStream.open(`${base}/events`)).stream;
    await first.next('sample');
    const held = await open(port);
    const peer = `127.0.0.1:${held.localPort}`;
    await first.next<PageDecision>('decision', (d) => d.peer === peer);
    first.close();
    stream = (await EventStream.open(`${base}/events?sample=0`)).stream;
    const later = await stream.next<PageSnapshot>('snapshot');
    expect(later.decisions.map((d) => [d.peer, d.action])).toEqual([[peer, 'accept']]);
    expect(later.history.length).toBeGreaterThanOrEqual(1);
    held.destroy();
  });
});

describe('POST /scenario', () => {
  it('plays a scenario file on the board clock and reports its playback', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    const clock = appliance.board.sim!.clock;
    clock.stopRealtime();
    const scenario = {
      name: 'sensor drops out',
      steps: [
        { atMs: 1000, inject: { target: 'board-temp', kind: 'nack' }, label: 'dropout' },
        { atMs: 3000, set: { ambient: { temperatureC: 31.5 } } },
        { atMs: 5000, clear: 'dropout' },
      ],
    };
    const started = await json(await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify(scenario) }));
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ id: 's1', name: 'sensor drops out', steps: 3, state: 'playing' });
    expect(started.body.endsAt).toBe((started.body.startedAt as number) + 5000);

    const faults = async (): Promise<unknown[]> => ((await json(await fetch(`${base}/faults`))).body.active as Array<{ target: string; kind: string }>).map((f) => [f.target, f.kind]);
    await clock.advance(999);
    expect(await faults()).toEqual([]);
    await clock.advance(1);
    expect(await faults()).toEqual([['board-temp', 'nack']]);
    await clock.advance(2000);
    // The BME280's reads take their wire time on the stopped board clock: move it until they are done.
    const [ambient] = await settle(clock, appliance.devices.diagnose(['ambient']));
    expect(ambient!.reading!.temperatureC).toBeCloseTo(31.5, 1);
    await clock.advance(2000);
    expect(await faults()).toEqual([]);
    const list = await json(await fetch(`${base}/scenario`));
    expect(list.body.scenarios).toEqual([expect.objectContaining({ id: 's1', state: 'done', errors: [] })]);
  });

  it('names what is wrong with an invalid scenario, and stops a playing one', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    appliance.board.sim!.clock.stopRealtime();
    const bad = await json(await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify({ steps: [{ atMs: 0, inject: { target: 'board-temp', kind: 'melt' } }] }) }));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'ERR_SIM_SCENARIO', message: expect.stringContaining('/steps/0/inject/kind') });
    const notJson = await json(await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: '{ steps: ' }));
    expect(notJson.body.error).toMatchObject({ code: 'ERR_CONTROL_BAD_REQUEST' });

    await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify({ steps: [{ atMs: 60_000, inject: { target: 'eth0', kind: 'carrier-down' } }] }) });
    const stopped = await json(await fetch(`${base}/scenario`, { method: 'DELETE' }));
    expect(stopped.body).toEqual({ stopped: ['s1'] });
    await appliance.board.sim!.clock.advance(60_000);
    expect(appliance.board.sim!.faults.list()).toEqual([]);
  });
});

describe('POST /clock', () => {
  it('changes the speed of the virtual clock and refuses nonsense', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    expect(await json(await fetch(`${base}/clock`, { method: 'POST', headers: jsonType, body: JSON.stringify({ speed: 10 }) }))).toEqual({ status: 200, body: { speed: 10 } });
    expect(appliance.board.sim!.clock.speed).toBe(10);
    const bad = await json(await fetch(`${base}/clock`, { method: 'POST', headers: jsonType, body: JSON.stringify({ speed: 0 }) }));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'ERR_CONTROL_BAD_REQUEST', message: expect.stringContaining('got 0') });
  });
});

describe('the page behind the endpoint', () => {
  it('serves the page and its files with a policy that allows this origin only', async () => {
    running = await startPageAppliance();
    const page = await fetch(`${running.base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('<script type="module" src="/ui/app.js">');
    for (const [path, type] of [
      ['/ui/app.js', 'text/javascript; charset=utf-8'],
      ['/ui/style.css', 'text/css; charset=utf-8'],
      ['/ui/icon.svg', 'image/svg+xml'],
    ]) {
      const res = await fetch(`${running.base}${path!}`);
      expect([path, res.status, res.headers.get('content-type')]).toEqual([path, 200, type]);
    }
    expect((await fetch(`${running.base}/ui/..%2fui.ts`)).status).toBe(404);
    expect((await fetch(`${running.base}/ui/missing.js`)).status).toBe(404);
  });

  it('refuses a cross-origin POST, as a page elsewhere would send through a visitor', async () => {
    running = await startPageAppliance();
    const res = await json(
      await fetch(`${running.base}/faults`, { method: 'POST', headers: { origin: 'http://evil.example' }, body: JSON.stringify({ target: 'board-temp', kind: 'nack' }) }),
    );
    expect(res.status).toBe(403);
    expect(running.appliance.board.sim!.faults.list()).toEqual([]);
  });

  it('with a token: shows a token form, trades the right token for a cookie the endpoint accepts', async () => {
    running = await startPageAppliance({ token: 's3cret-token-for-tests' });
    const { base } = running;
    const form = await fetch(`${base}/`);
    expect(form.status).toBe(401);
    expect(await form.text()).toContain('<form method="post" action="/login">');
    expect((await fetch(`${base}/events`)).status).toBe(401);
    expect((await fetch(`${base}/ui/app.js`)).status).toBe(401);

    const wrong = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'guess' }), redirect: 'manual' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();

    const right = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 's3cret-token-for-tests' }), redirect: 'manual' });
    expect(right.status).toBe(303);
    expect(right.headers.get('location')).toBe('/');
    const cookie = right.headers.get('set-cookie')!;
    expect(cookie).toBe('handcheck_token=s3cret-token-for-tests; HttpOnly; SameSite=Strict; Path=/');
    const pair = cookie.split(';')[0]!;
    expect((await fetch(`${base}/`, { headers: { cookie: pair } })).status).toBe(200);
    expect((await fetch(`${base}/status`, { headers: { cookie: pair } })).status).toBe(200);
    expect((await fetch(`${base}/status`, { headers: { cookie: 'handcheck_token=s3cret-token-for-tesTs' } })).status).toBe(401);
    const opened = await EventStream.open(`${base}/events`, { cookie: pair });
    stream = opened.stream;
    expect(opened.response.statusCode).toBe(200);
    expect((await stream.next<PageSnapshot>('snapshot')).status.board.id).toBe('sim-appliance');
  });

  it('on a board without the fault API the page is read-only', async () => {
    running = await startPageAppliance();
    const { appliance } = running;
    // What the appliance looks like on real hardware: the same firmware, no sim board behind it.
    const hardware = { board: { hal: appliance.board.hal, sim: undefined }, status: () => ({ ...appliance.status(), sim: undefined }), onDecision: (l: never) => appliance.onDecision(l), devices: appliance.devices } as unknown as Appliance;
    const page = new SimPage(hardware);
    const control = await startControlServer({ host: '127.0.0.1', port: 0, api: { status: () => hardware.status(), metrics: () => appliance.metrics.render(), faults: undefined, routes: page }, logger: pino({ level: 'silent' }) });
    const base = `http://127.0.0.1:${control.address.port}`;
    try {
      const opened = await EventStream.open(`${base}/events?sample=0`);
      stream = opened.stream;
      const snapshot = await stream.next<PageSnapshot>('snapshot');
      expect(snapshot.features).toEqual({ faults: false, scenarios: false, clock: false });
      expect(snapshot.catalogue).toEqual({});
      expect(snapshot.status.sim).toBeUndefined();
      for (const [method, path, body] of [
        ['POST', '/scenario', { steps: [] }],
        ['POST', '/clock', { speed: 2 }],
        ['POST', '/faults', { target: 'board-temp', kind: 'nack' }],
      ] as const) {
        const res = await json(await fetch(`${base}${path}`, { method, headers: jsonType, body: JSON.stringify(body) }));
        expect([path, res.status, (res.body.error as { code: string }).code]).toEqual([path, 404, 'ERR_CONTROL_NO_FAULTS']);
      }
    } finally {
      stream?.close();
      stream = undefined;
      page.close();
      await control.close();
    }
  });
});
