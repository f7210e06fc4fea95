/**
 * The control and observability endpoint: `GET /status`, `GET /metrics`, and on the sim board the
 * fault API (`GET/POST/DELETE /faults`). Loopback by default; bound anywhere else it demands a bearer
 * token, because it can change what the appliance does. Fault injection is offered only when the
 * firmware runs on the sim board - there is no route for it on real hardware. More routes (the sim page,
 * app/sim-page.ts) mount through `ControlApi.routes`; for browsers the token may also come as a cookie.
 */
import { timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { HandcheckError } from '../config/errors.js';
import { type ActiveFault, type FaultRegistry, parseFaultSpec } from '../sim/faults.js';

/** The sim board's fault registry, as the endpoint uses it. */
export type FaultApi = Pick<FaultRegistry, 'catalogue' | 'list' | 'inject' | 'clear' | 'clearAll'>;

/** What a mounted set of routes (the sim page) learns of a request. */
export interface ControlRequest {
  /** `METHOD /path`, trailing slashes removed. */
  route: string;
  url: URL;
  /** The request carried the bearer token (header or page cookie), or none is required. */
  authorized: boolean;
  /** A token is required on this endpoint. */
  tokenRequired: boolean;
  /** Compares a token a person typed with the endpoint's, in constant time. */
  checkToken(given: string): boolean;
}

/**
 * More routes behind the same endpoint. Asked first, also for unauthorized requests (so a browser
 * can be shown a token form); resolves true when it answered the request.
 */
export interface ControlRoutes {
  handle(req: IncomingMessage, res: ServerResponse, request: ControlRequest): Promise<boolean>;
}

export interface ControlApi {
  status(): unknown;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Present only on the sim board. */
  faults: FaultApi | undefined;
  routes?: ControlRoutes | undefined;
}

/** Cookie the page sets once a person typed the token, since a browser cannot send bearer headers on navigation or EventSource. */
export const tokenCookie = 'handcheck_token';

export class ControlError extends HandcheckError {
  constructor(
    code: 'ERR_CONTROL_TOKEN_REQUIRED' | 'ERR_CONTROL_BAD_REQUEST' | 'ERR_CONTROL_UNAUTHORIZED' | 'ERR_CONTROL_NOT_FOUND' | 'ERR_CONTROL_NO_FAULTS',
    message: string,
    readonly status = 400,
  ) {
    super(code, message);
  }
}

export interface ControlServerOptions {
  host: string;
  port: number;
  /** Required unless `host` is a loopback address. */
  token?: string | undefined;
  api: ControlApi;
  logger: Logger;
}

export interface ControlServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

const maxBodyBytes = 64 * 1024;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${text}\n`);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof ControlError) return send(res, err.status, { error: { code: err.code, message: err.message } });
  if (err instanceof HandcheckError) {
    const status = err.code === 'ERR_SIM_FAULT_NOT_FOUND' ? 404 : 400;
    return send(res, status, { error: { code: err.code, message: err.message } });
  }
  send(res, 500, { error: { code: 'ERR_CONTROL_INTERNAL', message: err instanceof Error ? err.message : String(err) } });
}

/** A request body, refused past 64 KiB. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw new ControlError('ERR_CONTROL_BAD_REQUEST', `request body over ${maxBodyBytes} bytes`, 413);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readJson(req: IncomingMessage, what = 'request body'): Promise<unknown> {
  const text = await readBody(req);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ControlError('ERR_CONTROL_BAD_REQUEST', `${what} is not JSON: ${(err as Error).message}`);
  }
}

function describeFault(fault: ActiveFault): Record<string, unknown> {
  return { id: fault.id, target: fault.target, kind: fault.kind, params: fault.params, startedAt: fault.startedAt, remaining: fault.remaining, hits: fault.hits, spec: fault.spec };
}

function tokenMatches(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return tokenMatches(header.slice(7), token);
  return tokenMatches(cookie(req, tokenCookie) ?? '', token);
}

export async function startControlServer({ host, port, token, api, logger }: ControlServerOptions): Promise<ControlServer> {
  if (!isLoopback(host) && !token) {
    throw new ControlError(
      'ERR_CONTROL_TOKEN_REQUIRED',
      `the control endpoint on ${host} is reachable from the network; set a bearer token (--control-token or HANDCHECK_CONTROL_TOKEN)`,
    );
  }
  const faults = (): FaultApi => {
    if (!api.faults) throw new ControlError('ERR_CONTROL_NO_FAULTS', 'fault injection exists only on the sim board', 404);
    return api.faults;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://control');
    const route = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '') || '/'}`;
    const ok = authorized(req, token);
    const request: ControlRequest = { route, url, authorized: ok, tokenRequired: token !== undefined, checkToken: (given) => token === undefined || tokenMatches(given, token) };
    if (api.routes && (await api.routes.handle(req, res, request))) return;
    if (!ok) {
      res.setHeader('www-authenticate', 'Bearer');
      throw new ControlError('ERR_CONTROL_UNAUTHORIZED', 'missing or wrong bearer token', 401);
    }
    if (route === 'GET /status') return send(res, 200, api.status());
    if (route === 'GET /metrics') {
      const { contentType, body } = await api.metrics();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return;
    }
    if (route === 'GET /faults') return send(res, 200, { kinds: faults().catalogue(), active: faults().list().map(describeFault) });
    if (route === 'POST /faults') {
      const fault = faults().inject(parseFaultSpec(await readJson(req)));
      logger.warn({ fault: describeFault(fault) }, 'fault injected');
      return send(res, 201, describeFault(fault));
    }
    if (route === 'DELETE /faults') {
      faults().clearAll();
      logger.info('all faults cleared');
      return send(res, 200, { cleared: 'all' });
    }
    const one = /^DELETE \/faults\/([^/]+)$/.exec(route);
    if (one) {
      const id = decodeURIComponent(one[1]!);
      faults().clear(id);
      logger.info({ fault: id }, 'fault cleared');
      return send(res, 200, { cleared: id });
    }
    throw new ControlError('ERR_CONTROL_NOT_FOUND', `no route ${route}`, 404);
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  return {
    address: server.address() as AddressInfo,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
