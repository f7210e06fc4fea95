/**
 * The monitor's HTTP endpoint: `/metrics` for Prometheus, `/probe?target=HOST:PORT` for Prometheus
 * to schedule probes itself (monitor/exporter.ts), the dashboard at `/`, its live feed at
 * `/events` (server-sent events: one `snapshot`, then `update` batches), and JSON at `/api/targets`
 * and `/api/targets/NAME/history`, and its icon at `/favicon.ico`. Results arrive at up to thousands a
 * second; the feed coalesces them per target and sends at most one batch every `batchMs`, each
 * target in it with only the fields that changed since the last batch, so a browser's cost does not
 * grow with the probe rate.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { dashboardHtml } from './dashboard.js';
import { MonitorClosedError, MonitorProbeParamError } from './errors.js';
import { type ProbeRequest, probeMetrics, probeRequest } from './exporter.js';
import { faviconIco } from './favicon.js';
import type { Monitor, TargetSnapshot } from './monitor.js';
import type { Transition } from './state.js';
import { formatHostPort } from '../config/host-port.js';

export interface MonitorHttpOptions {
  monitor: Monitor;
  host: string;
  port: number;
  logger: Logger;
  /** Longest time a result waits before it is sent to the dashboards. Default 250 ms. */
  batchMs?: number;
  /** How far back the dashboard's timelines reach. Default 1 hour. */
  timelineMs?: number;
}

export interface MonitorHttpServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Trimmed for the wire: the dashboard needs the state, its reason and age, and the last latency. */
function wire(t: TargetSnapshot): Record<string, unknown> {
  return {
    name: t.name,
    address: formatHostPort(t),
    mode: t.mode,
    labels: t.labels,
    state: t.state,
    since: t.since,
    reason: t.reason,
    held: t.held,
    connectMs: t.last?.connectMs,
    lastResult: t.last?.result,
    lastAt: t.last?.at,
    pending: t.pending,
    ...(t.bootCount === undefined ? {} : { bootCount: t.bootCount }),
  };
}

/**
 * Fields the page does not show: with them, every probe of every target would be news. The snapshot
 * and /api/targets still carry them.
 */
const notOnPage = new Set(['lastAt', 'lastResult']);

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

export function startMonitorHttp(options: MonitorHttpOptions): Promise<MonitorHttpServer> {
  const { monitor, logger } = options;
  const batchMs = options.batchMs ?? 250;
  const timelineMs = options.timelineMs ?? 3_600_000;
  const clients = new Set<ServerResponse>();
  const changed = new Set<string>();
  let transitions: Transition[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  // What the last batch said of each target, as JSON per field: the next batch carries only what
  // differs. Cleared when a page connects, so its snapshot cannot be newer than what it is sent next.
  const sent = new Map<string, Map<string, string>>();

  const delta = (t: TargetSnapshot): Record<string, unknown> | undefined => {
    const before = sent.get(t.name);
    const now = new Map<string, string>();
    const out: Record<string, unknown> = { name: t.name };
    let any = false;
    for (const [key, raw] of Object.entries(wire(t))) {
      if (notOnPage.has(key)) continue;
      // null, not undefined, so that a field that went away (a pending change confirmed) says so; the
      // page shows connect times to 10 us.
      const value = key === 'connectMs' && typeof raw === 'number' ? Math.round(raw * 100) / 100 : (raw ?? null);
      const text = JSON.stringify(value);
      now.set(key, text);
      if (before?.get(key) === text) continue;
      out[key] = value;
      any = true;
    }
    sent.set(t.name, now);
    return any ? out : undefined;
  };

  const flush = (): void => {
    flushTimer = undefined;
    const targets = [...changed].flatMap((name) => {
      const t = monitor.target(name);
      const change = t && delta(t);
      return change ? [change] : [];
    });
    const frame = `event: update\ndata: ${JSON.stringify({ now: Date.now(), targets, transitions })}\n\n`;
    changed.clear();
    transitions = [];
    for (const res of clients) res.write(frame);
  };
  const schedule = (): void => {
    flushTimer ??= setTimeout(flush, batchMs);
  };
  // With no dashboard open nothing is collected: a page that opens later gets it all in its snapshot.
  const offResult = monitor.onResult((target) => {
    if (clients.size === 0) return;
    changed.add(target.name);
    schedule();
  });
  const offTransition = monitor.onTransition((transition) => {
    if (clients.size === 0) return;
    transitions.push(transition);
    changed.add(transition.target);
    schedule();
  });
  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(': keepalive\n\n');
  }, 15_000).unref();

  const events = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const now = Date.now();
    const snapshot = { now, timelineMs, startedAt: monitor.startedAt, targets: monitor.snapshot().map(wire), transitions: monitor.history.since(now - timelineMs) };
    res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
    sent.clear();
    clients.add(res);
    req.once('close', () => clients.delete(res));
  };

  const probeEndpoint = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    let request: ProbeRequest;
    try {
      request = probeRequest(url.searchParams, monitor.defaults, req.headers['x-prometheus-scrape-timeout-seconds'] as string | undefined);
    } catch (err) {
      if (err instanceof MonitorProbeParamError) return json(res, 400, { error: { code: err.code, message: err.message } });
      throw err;
    }
    // Prometheus gone (scrape timeout, shutdown): the probe is abandoned with it.
    const abandoned = new AbortController();
    res.once('close', () => abandoned.abort(new MonitorClosedError('probe request')));
    try {
      return send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', await probeMetrics(request, abandoned.signal));
    } catch (err) {
      if (abandoned.signal.aborted) return;
      throw err;
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://monitor');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: { code: 'ERR_MONITOR_HTTP_METHOD', message: `${req.method} is not served; use GET` } });
    if (url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', dashboardHtml);
    if (url.pathname === '/favicon.ico') {
      res.writeHead(200, { 'content-type': 'image/x-icon', 'cache-control': 'max-age=86400' });
      return void res.end(faviconIco);
    }
    if (url.pathname === '/metrics') {
      const { contentType, body } = await monitor.metrics.render();
      return send(res, 200, contentType, body);
    }
    if (url.pathname === '/events') return events(req, res);
    if (url.pathname === '/probe') return probeEndpoint(req, res, url);
    if (url.pathname === '/api/targets') return json(res, 200, { now: Date.now(), targets: monitor.snapshot().map(wire) });
    const history = /^\/api\/targets\/([^/]+)\/history$/.exec(url.pathname);
    if (history) {
      const name = decodeURIComponent(history[1]!);
      if (!monitor.target(name)) return json(res, 404, { error: { code: 'ERR_MONITOR_HTTP_NOT_FOUND', message: `no target named "${name}"` } });
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      return json(res, 200, { target: name, transitions: monitor.history.forTarget(name, { limit: Number.isInteger(limit) && limit > 0 ? limit : 1000 }) });
    }
    if (url.pathname === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    return json(res, 404, { error: { code: 'ERR_MONITOR_HTTP_NOT_FOUND', message: `nothing at ${url.pathname}` } });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, url: req.url }, 'monitor HTTP request failed');
      if (!res.headersSent) json(res, 500, { error: { code: 'ERR_MONITOR_HTTP_INTERNAL', message: (err as Error).message } });
      else res.destroy();
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      let closing: Promise<void> | undefined;
      resolve({
        address: server.address() as AddressInfo,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            offResult();
            offTransition();
            clearInterval(heartbeat);
            if (flushTimer) clearTimeout(flushTimer);
            for (const res of clients) res.end();
            clients.clear();
            server.close(() => done());
            server.closeAllConnections();
          })),
      });
    });
  });
}
