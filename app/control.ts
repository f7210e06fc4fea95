/**
 * The control and observability endpoint: `GET /status`, `GET /metrics`, and on the sim board the
 * fault API (`GET/POST/DELETE /faults`). Loopback by default; bound anywhere else it demands a bearer
 * token, because it can change what the appliance does. Fault injection is offered only when the
 * firmware runs on the sim board - there is no route for it on real hardware. More routes (the sim page,
 * app/sim-page.ts) mount through `ControlApi.routes`; for browsers the token may also come as a cookie.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import type { Logger } from 'pino';
import { HandcheckError } from '../config/errors.js';
import { type ActiveFault, type FaultRegistry, parseFaultSpec } from '../sim/faults.js';
import { GuessLimiter, type GuessLimiterOptions } from './guess-limiter.js';

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
    code:
      | 'ERR_CONTROL_TOKEN_REQUIRED'
      | 'ERR_CONTROL_TOKEN_TOO_SHORT'
      | 'ERR_CONTROL_BAD_REQUEST'
      | 'ERR_CONTROL_MEDIA_TYPE'
      | 'ERR_CONTROL_HOST'
      | 'ERR_CONTROL_UNAUTHORIZED'
      | 'ERR_CONTROL_TOO_MANY'
      | 'ERR_CONTROL_NOT_FOUND'
      | 'ERR_CONTROL_NO_FAULTS',
    message: string,
    readonly status = 400,
  ) {
    super(code, message);
  }
}

export interface ControlServerOptions {
  host: string;
  port: number;
  /** Required unless `host` resolves to a loopback address; at least `minTokenLength` characters. */
  token?: string | undefined;
  api: ControlApi;
  logger: Logger;
  /** A connection that sends nothing this long is closed. Default 10000. */
  idleTimeoutMs?: number;
  /** Connections past this many are closed at once. Default 64. */
  maxConnections?: number;
  /** Wrong token guesses per client address. Default: a burst of 10, then one a second. */
  guesses?: GuessLimiterOptions;
  /** Resolves `host`; tests substitute it. Default: the system resolver. */
  lookup?: (host: string) => Promise<{ address: string }>;
}

export interface ControlServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

const maxBodyBytes = 64 * 1024;

/** Shorter tokens fall to guessing even at the guess limit (16 characters of base64: 96 bits). */
export const minTokenLength = 16;

/** Whether an IP address (not a name: names are resolved first) is a loopback address. */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(address) === 6 && /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(address);
}

/** `%zz` in a path or cookie is the client's mistake, not a server error. */
function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ControlError('ERR_CONTROL_BAD_REQUEST', `${what} has bad percent-encoding`);
  }
}

/**
 * The name part of a Host header. A tokenless endpoint answers only to IP literals and `localhost`:
 * a page on evil.example whose name a rebinding DNS server points at 127.0.0.1 sends
 * `Host: evil.example`, and must not reach the fault routes through a visitor's browser.
 */
function hostName(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1]!;
  const colon = header.lastIndexOf(':');
  return colon >= 0 && header.indexOf(':') === colon ? header.slice(0, colon) : header;
}

function trustedHost(header: string | undefined): boolean {
  if (header === undefined) return false;
  const name = hostName(header).toLowerCase().replace(/\.$/, '');
  return isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost');
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

/** A JSON request body. Only `application/json`: a form or text/plain body is what a cross-site page can send without asking. */
export async function readJson(req: IncomingMessage, what = 'request body'): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ControlError('ERR_CONTROL_MEDIA_TYPE', `${what} must be sent as content-type application/json, got ${type === '' ? 'none' : JSON.stringify(type)}`, 415);
  }
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

/** Hashing both sides first makes the comparison take the same time whatever the given length. */
function tokenMatches(given: string, token: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decode(part.slice(eq + 1).trim(), `cookie ${name}`);
  }
  return undefined;
}

/** The token the request carries (bearer header, else page cookie), or undefined. */
function givenToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7);
  return cookie(req, tokenCookie);
}

export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { host, port, token, api, logger } = options;
  if (token !== undefined && token.length < minTokenLength) {
    throw new ControlError('ERR_CONTROL_TOKEN_TOO_SHORT', `the control token must be at least ${minTokenLength} characters, got ${token.length}`);
  }
  // Judge loopback by the address the name resolves to, and listen on that address, so a name such
  // as 127.0.0.1.example cannot pass for loopback.
  const resolve = options.lookup ?? ((name: string) => dnsLookup(name));
  const bindAddress = isIP(host) !== 0 ? host : (await resolve(host)).address;
  if (!isLoopbackAddress(bindAddress) && !token) {
    throw new ControlError(
      'ERR_CONTROL_TOKEN_REQUIRED',
      `the control endpoint on ${host}${bindAddress === host ? '' : ` (${bindAddress})`} is reachable from the network; set a bearer token (--control-token or HANDCHECK_CONTROL_TOKEN)`,
    );
  }
  const guesses = new GuessLimiter(options.guesses);
  let guessesLogged = -Infinity;
  /** Whether the request may act; throws 429 while its address is out of guesses. */
  const authorize = (req: IncomingMessage, res: ServerResponse, given: string | undefined): boolean => {
    if (token === undefined) return true;
    const address = req.socket.remoteAddress ?? '';
    const wait = guesses.retryAfterMs(address);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      res.setHeader('retry-after', String(seconds));
      throw new ControlError('ERR_CONTROL_TOO_MANY', `too many wrong tokens from ${address}; retry in ${seconds} s`, 429);
    }
    if (given === undefined) return false;
    if (tokenMatches(given, token)) return true;
    guesses.failed(address);
    if (guesses.retryAfterMs(address) > 0 && performance.now() - guessesLogged > 60_000) {
      guessesLogged = performance.now();
      logger.warn({ client: address }, 'wrong control tokens past the guess limit; refusing that client for a while');
    }
    return false;
  };
  const faults = (): FaultApi => {
    if (!api.faults) throw new ControlError('ERR_CONTROL_NO_FAULTS', 'fault injection exists only on the sim board', 404);
    return api.faults;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (token === undefined && !trustedHost(req.headers.host)) {
      throw new ControlError('ERR_CONTROL_HOST', `Host ${JSON.stringify(req.headers.host ?? '')} refused: without a token this endpoint answers only to localhost and IP addresses`, 421);
    }
    const url = new URL(req.url ?? '/', 'http://control');
    const route = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '') || '/'}`;
    const ok = authorize(req, res, givenToken(req));
    const request: ControlRequest = { route, url, authorized: ok, tokenRequired: token !== undefined, checkToken: (given) => authorize(req, res, given) };
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
      const id = decode(one[1]!, 'fault id');
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
  // A connection that sends nothing is never timed out by the two above; this closes it (the page's
  // event stream writes every second, so it stays).
  server.timeout = options.idleTimeoutMs ?? 10_000;
  // Every connection holds a descriptor the Modbus service needs too.
  server.maxConnections = options.maxConnections ?? 64;
  let dropsLogged = -Infinity;
  server.on('drop', (drop?: { remoteAddress?: string }) => {
    if (performance.now() - dropsLogged < 60_000) return;
    dropsLogged = performance.now();
    logger.warn({ client: drop?.remoteAddress, maxConnections: server.maxConnections }, 'control endpoint at its connection limit; closing new connections');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bindAddress, () => {
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
