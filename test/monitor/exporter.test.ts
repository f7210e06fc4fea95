/**
 * `/probe`, the multi-target exporter endpoint, on its own: one classified connect per request, its
 * parameters checked with a named error, the connect timeout cut to fit Prometheus's scrape timeout.
 */
import { type AddressInfo, type Server, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeRequest } from '../../monitor/exporter.js';
import { type MonitorHttpServer, startMonitorHttp } from '../../monitor/http.js';
import type { Monitor } from '../../monitor/monitor.js';
import { silent } from '../helpers/log.js';
import { startMonitor } from './helpers.js';

describe('/probe', () => {
  let listener: Server;
  let resetter: Server;
  let monitor: Monitor;
  let http: MonitorHttpServer;
  let base: string;
  const portOf = (server: Server): number => (server.address() as AddressInfo).port;

  beforeAll(async () => {
    listener = createServer((socket) => socket.on('error', () => undefined));
    // An after-mode gate that failed: RST as soon as the handshake completes.
    resetter = createServer((socket) => socket.resetAndDestroy());
    await Promise.all([listener, resetter].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    // A monitor that schedules nothing itself: Prometheus does, through /probe.
    monitor = startMonitor({ defaults: { graceMs: 40 }, targets: [] });
    http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent });
    base = `http://127.0.0.1:${http.address.port}`;
  });
  afterAll(async () => {
    await http?.close();
    await monitor?.close();
    for (const s of [listener, resetter]) await new Promise((resolve) => s?.close(resolve));
  });

  it('answers one probe of the target as metrics: success, result, errno, connect time', async () => {
    const up = await fetch(`${base}/probe?target=127.0.0.1:${portOf(listener)}&mode=probe`);
    expect(up.status).toBe(200);
    expect(up.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await up.text();
    expect(text).toContain('probe_success 1\n');
    expect(text).toContain('handcheck_probe_result{result="up",errno=""} 1\n');
    expect(text).toMatch(/^handcheck_probe_connect_duration_seconds [\d.e-]+$/m);
    // The probe waited its grace window (40 ms) before calling the target up.
    expect(Number(/^probe_duration_seconds (\S+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(0.04);

    const reset = await (await fetch(`${base}/probe?target=127.0.0.1:${portOf(resetter)}`)).text();
    expect(reset).toContain('probe_success 0\n');
    expect(reset).toMatch(/handcheck_probe_result\{result="reset",errno="ECONNRESET"\} 1/);
  });

  it('refuses a request without a usable target or with another mode, naming the parameter', async () => {
    for (const [query, param] of [
      ['', 'target'],
      ['target=nohost', 'target'],
      ['target=127.0.0.1:0', 'target'],
      [`target=127.0.0.1:${portOf(listener)}&mode=hold`, 'mode'],
      [`target=127.0.0.1:${portOf(listener)}&mode=fast`, 'mode'],
      [`target=127.0.0.1:${portOf(listener)}&grace_ms=-1`, 'grace_ms'],
      [`target=127.0.0.1:${portOf(listener)}&timeout_ms=abc`, 'timeout_ms'],
    ] as const) {
      const response = await fetch(`${base}/probe?${query}`);
      expect(response.status, query).toBe(400);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('ERR_MONITOR_PROBE_PARAM');
      expect(body.error.message.startsWith(`${param} `), body.error.message).toBe(true);
    }
  });

  it('refuses hold mode saying where hold targets go instead', async () => {
    const response = await fetch(`${base}/probe?target=127.0.0.1:${portOf(listener)}&mode=hold`);
    const { error } = (await response.json()) as { error: { message: string } };
    expect(error.message).toMatch(/built-in scheduler .*"mode": "hold".*__handcheck_mode: hold in a file_sd file.*Why \/probe does not hold/);
  });

  it("fits the connect timeout into Prometheus's scrape timeout, less the grace window", () => {
    const defaults = { graceMs: 300, connectTimeoutMs: 2000 };
    const params = (q: string): URLSearchParams => new URLSearchParams(q);
    expect(probeRequest(params('target=[::1]:502'), defaults, undefined)).toEqual({ host: '::1', port: 502, graceMs: 300, connectTimeoutMs: 2000 });
    expect(probeRequest(params('target=a:1'), defaults, '1')).toEqual({ host: 'a', port: 1, graceMs: 300, connectTimeoutMs: 450 });
    expect(probeRequest(params('target=a:1&grace_ms=100&timeout_ms=200'), defaults, '10')).toEqual({ host: 'a', port: 1, graceMs: 100, connectTimeoutMs: 200 });
    expect(() => probeRequest(params('target=a:1&grace_ms=5000'), defaults, '1')).toThrow(/grace_ms 5000 ms does not fit Prometheus's scrape timeout of 1 s/);
  });
});
