/**
 * The sim page: the board, the gate and the faults in a browser, served by the control endpoint.
 *
 * Routes it adds to the endpoint (behind the same bearer token):
 * - `GET /` the page, `GET /ui/FILE` its static files (shipped as they are in app/sim-page/, no build);
 * - `GET /events` server-sent events: `snapshot` on connect, `sample` (numeric readings and states
 *   for the chart) and `status` at every sample, `status` at every change, `decision` for each gate
 *   decision as it happens;
 * - sim board only: `POST /scenario` plays a scenario (the JSON of a scenario file) on the board clock,
 *   `GET /scenario` lists playbacks, `DELETE /scenario` stops them; `POST /clock` `{ "speed" }`.
 * Faults go through the endpoint's own `/faults` routes, the ones `handcheck fault` uses.
 *
 * While at least one page is open the components are diagnosed once per `sampleMs` (real time), so
 * readings stay live and the chart has points; nobody watching costs nothing. Those diagnoses count
 * against a fault's `times` like any other. A page can opt out with `/events?sample=0`.
 *
 * A browser cannot put a bearer header on a navigation or an EventSource, so when a token is set an
 * unauthorized `GET /` shows a token form, and `POST /login` trades the token for an HttpOnly,
 * SameSite=Strict cookie the endpoint accepts in place of the header.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { GpioLineConfig } from '../config/board-config.js';
import type { SimBoard } from '../sim/board.js';
import { type ScenarioPlayback, parseScenario, playScenario } from '../sim/scenario.js';
import type { Appliance, ApplianceStatus, RecordedDecision } from './appliance.js';
import { ControlError, type ControlRequest, type ControlRoutes, readBody, readJson, tokenCookie } from './control.js';
import { packageRoot } from './package-root.js';

export interface SimPageOptions {
  /** Real ms between samples while a page is open. Default 1000. */
  sampleMs?: number;
  /** Samples kept for the chart. Default 900 (15 minutes at the default rate). */
  historyLimit?: number;
  /** Where the static files are; default app/sim-page/ under the package root. */
  assetsDir?: string;
  /** Told when the page itself is missing from the install. */
  logger?: Logger;
  /** Playbacks kept (playing, then the most recent finished ones); more playing at once are refused. Default 16. */
  maxPlaybacks?: number;
}

/** A gate decision stamped with the board-clock time it was made; the appliance keeps the last 200. */
export type PageDecision = RecordedDecision;

/** Numeric readings and states of every component at one board-clock time. */
export interface PageSample {
  at: number;
  readings: Record<string, Record<string, number>>;
  states: Record<string, string>;
}

export interface PagePlayback {
  id: string;
  name: string;
  steps: number;
  /** Board-clock ms the playback started; steps run at `startedAt + atMs`. */
  startedAt: number;
  endsAt: number;
  state: 'playing' | 'done' | 'stopped';
  errors: Array<{ step: number; message: string }>;
}

export interface PageStatus extends Omit<ApplianceStatus, 'recentDecisions'> {
  scenarios: PagePlayback[];
}

export interface PageSnapshot {
  status: PageStatus;
  features: { faults: boolean; scenarios: boolean; clock: boolean };
  /** Fault kinds by target, from the sim board's registry; empty on real hardware. */
  catalogue: Record<string, Array<{ kind: string; description: string }>>;
  gpioLines: Record<string, Pick<GpioLineConfig, 'direction' | 'activeLow'>>;
  decisions: PageDecision[];
  history: PageSample[];
  sampleMs: number;
}

/** Speeds the page offers; far above these the sim's diagnosis deadlines (board ms) shrink below real scheduling jitter. */
const maxSpeed = 1000;

const contentTypes: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/** Nothing but this origin: the page must work with no network but the appliance. */
const securityHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export function defaultAssetsDir(): string {
  return join(packageRoot, 'app', 'sim-page');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

/** Browsers send Origin on cross-site POSTs; a page elsewhere must not drive the appliance through a visitor's browser. */
function crossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origin === 'null') return origin === 'null';
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

function numericReadings(reading: Record<string, unknown> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(reading ?? {})) if (typeof value === 'number' && Number.isFinite(value)) out[name] = value;
  return out;
}

export class SimPage implements ControlRoutes {
  private readonly sampleMs: number;
  private readonly historyLimit: number;
  private readonly assetsDir: string;
  private readonly logger: Logger | undefined;
  private readonly maxPlaybacks: number;
  private readonly clients = new Map<ServerResponse, { sample: boolean }>();
  private readonly history: PageSample[] = [];
  private readonly playbacks: Array<{ info: PagePlayback; playback: ScenarioPlayback }> = [];
  private nextPlayback = 1;
  private ticker: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  /** A change arrived while a sample ran: that sample may have read the board before it. */
  private resample = false;
  private changeQueued = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly appliance: Appliance,
    options: SimPageOptions = {},
  ) {
    this.sampleMs = options.sampleMs ?? 1000;
    this.historyLimit = options.historyLimit ?? 900;
    this.assetsDir = options.assetsDir ?? defaultAssetsDir();
    this.logger = options.logger;
    this.maxPlaybacks = options.maxPlaybacks ?? 16;
    this.unsubscribe.push(
      appliance.onDecision((decision) => {
        this.broadcast('decision', decision);
        this.changed(false);
      }),
    );
    const sim = this.sim;
    if (sim) this.unsubscribe.push(sim.faults.on(() => this.changed(true)));
  }

  private get sim(): SimBoard | undefined {
    return this.appliance.board.sim;
  }

  private get board(): Appliance['board']['hal'] {
    return this.appliance.board.hal;
  }

  async handle(req: IncomingMessage, res: ServerResponse, { route, url, authorized, tokenRequired, checkToken }: ControlRequest): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD' && crossOrigin(req)) {
      throw new ControlError('ERR_CONTROL_UNAUTHORIZED', `cross-origin ${req.method ?? ''} from ${req.headers.origin ?? ''} refused`, 403);
    }
    const asset = /^GET \/ui\/([a-z0-9-]+\.(?:css|svg))$/.exec(route);
    // Styles and the icon are public (they ship in the package) so the token form can use them.
    if (asset) return this.sendAsset(res, asset[1]!, 200);
    if (route === 'POST /login') {
      const given = new URLSearchParams(await readBody(req)).get('token') ?? '';
      if (!checkToken(given)) return this.sendAsset(res, 'login.html', 401);
      const cookie = tokenRequired ? `${tokenCookie}=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/` : undefined;
      res.writeHead(303, { location: '/', ...(cookie ? { 'set-cookie': cookie } : {}), 'cache-control': 'no-store' });
      res.end();
      return true;
    }
    if (!authorized) {
      if (route === 'GET /') return this.sendAsset(res, 'login.html', 401);
      return false;
    }
    if (route === 'GET /') return this.sendAsset(res, 'index.html', 200);
    const script = /^GET \/ui\/([a-z0-9-]+\.js)$/.exec(route);
    if (script) return this.sendAsset(res, script[1]!, 200);
    if (route === 'GET /events') {
      this.openStream(req, res, url.searchParams.get('sample') !== '0');
      return true;
    }
    if (route === 'GET /scenario') {
      sendJson(res, 200, { scenarios: this.scenarioList() });
      return true;
    }
    if (route === 'POST /scenario') {
      sendJson(res, 201, this.play(await readJson(req, 'scenario')));
      return true;
    }
    if (route === 'DELETE /scenario') {
      sendJson(res, 200, { stopped: this.stopScenarios() });
      return true;
    }
    if (route === 'POST /clock') {
      sendJson(res, 200, this.setSpeed(await readJson(req, 'clock request')));
      return true;
    }
    return false;
  }

  private async sendAsset(res: ServerResponse, name: string, status: number): Promise<true> {
    const type = contentTypes[name.slice(name.lastIndexOf('.') + 1)];
    let body: Buffer;
    try {
      if (!type) throw new Error(`no content type for ${name}`);
      body = await readFile(join(this.assetsDir, name));
    } catch (err) {
      // Where the firmware is installed is the appliance's business, not an anonymous client's.
      if (name.endsWith('.html')) {
        this.logger?.error({ file: join(this.assetsDir, name), err }, 'sim page file missing; the package must ship app/sim-page/');
      }
      throw new ControlError('ERR_CONTROL_NOT_FOUND', `no page file ${name}`, 404);
    }
    res.writeHead(status, { 'content-type': type, ...securityHeaders });
    res.end(body);
    return true;
  }

  private requireSim(what: string): SimBoard {
    const sim = this.sim;
    if (!sim) throw new ControlError('ERR_CONTROL_NO_FAULTS', `${what} exists only on the sim board`, 404);
    return sim;
  }

  private play(body: unknown): PagePlayback {
    const sim = this.requireSim('scenario playback');
    const scenario = parseScenario(body, 'POST /scenario');
    this.forgetFinished(this.maxPlaybacks - 1);
    if (this.playbacks.length >= this.maxPlaybacks) {
      throw new ControlError('ERR_CONTROL_TOO_MANY', `${this.playbacks.length} scenarios are playing; stop them first (DELETE /scenario)`, 429);
    }
    const startedAt = sim.clock.now();
    const lastAtMs = Math.max(0, ...scenario.steps.map((step) => step.atMs));
    const playback = playScenario(sim, scenario);
    const info: PagePlayback = {
      id: `s${this.nextPlayback++}`,
      name: scenario.name ?? 'unnamed scenario',
      steps: scenario.steps.length,
      startedAt,
      endsAt: startedAt + lastAtMs,
      state: 'playing',
      errors: [],
    };
    this.playbacks.push({ info, playback });
    void playback.done.then(() => {
      if (info.state === 'playing') info.state = 'done';
      this.changed(false);
    });
    this.changed(false);
    return info;
  }

  private stopScenarios(): string[] {
    const stopped: string[] = [];
    for (const { info, playback } of this.playbacks) {
      if (info.state !== 'playing') continue;
      info.state = 'stopped';
      playback.stop();
      stopped.push(info.id);
    }
    this.forgetFinished(0);
    this.changed(false);
    return stopped;
  }

  /** Drops the oldest finished playbacks until at most `keep` playbacks are left (playing ones stay). */
  private forgetFinished(keep: number): void {
    for (let i = 0; i < this.playbacks.length && this.playbacks.length > keep; ) {
      if (this.playbacks[i]!.info.state === 'playing') i += 1;
      else this.playbacks.splice(i, 1);
    }
  }

  private scenarioList(): PagePlayback[] {
    return this.playbacks.map(({ info, playback }) => ({
      ...info,
      errors: playback.errors.map(({ step, error }) => ({ step, message: error.message })),
    }));
  }

  private setSpeed(body: unknown): { speed: number } {
    const sim = this.requireSim('the virtual clock');
    const speed = (body as { speed?: unknown } | null)?.speed;
    if (typeof speed !== 'number' || !(speed > 0 && speed <= maxSpeed)) {
      throw new ControlError('ERR_CONTROL_BAD_REQUEST', `clock "speed" must be a number in (0, ${maxSpeed}], got ${JSON.stringify(speed)}`);
    }
    sim.clock.startRealtime(speed);
    this.changed(false);
    return { speed: sim.clock.speed };
  }

  status(): PageStatus {
    return this.split().status;
  }

  /** The appliance's status without its decisions, which a page receives apart. */
  private split(): { status: PageStatus; decisions: PageDecision[] } {
    const { recentDecisions, ...status } = this.appliance.status();
    return { status: { ...status, scenarios: this.scenarioList() }, decisions: recentDecisions };
  }

  snapshot(): PageSnapshot {
    const sim = this.sim;
    const { status, decisions } = this.split();
    return {
      status,
      features: { faults: sim !== undefined, scenarios: sim !== undefined, clock: sim !== undefined },
      catalogue: sim ? sim.faults.catalogue() : {},
      gpioLines: Object.fromEntries(
        Object.entries(this.board.config.gpio ?? {}).map(([name, line]) => [name, { direction: line.direction, activeLow: line.activeLow ?? false }]),
      ),
      decisions,
      history: [...this.history],
      sampleMs: this.sampleMs,
    };
  }

  private openStream(req: IncomingMessage, res: ServerResponse, sample: boolean): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 1000\n\n`);
    this.clients.set(res, { sample });
    this.write(res, 'snapshot', this.snapshot());
    req.socket.setNoDelay(true);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopTicker();
    });
    this.startTicker();
    if (sample) this.sample();
  }

  private write(res: ServerResponse, event: string, data: unknown): void {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown): void {
    for (const res of this.clients.keys()) this.write(res, event, data);
  }

  private startTicker(): void {
    if (this.ticker) return;
    this.ticker = setInterval(() => this.tick(), this.sampleMs);
    this.ticker.unref();
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  private tick(): void {
    if ([...this.clients.values()].some((c) => c.sample)) this.sample();
    else this.broadcast('status', this.status());
  }

  /**
   * Something changed (a fault, a decision, a playback): tell the pages once per turn of the event
   * loop, and after a fault re-diagnose first so the page shows what the fault did.
   */
  private changed(rediagnose: boolean): void {
    if (this.clients.size === 0) return;
    if (rediagnose && [...this.clients.values()].some((c) => c.sample)) {
      if (this.sampling) this.resample = true;
      else this.sample();
      return;
    }
    if (this.changeQueued) return;
    this.changeQueued = true;
    setImmediate(() => {
      this.changeQueued = false;
      this.broadcast('status', this.status());
    });
  }

  /** Diagnoses every component (one at a time: a sample still running absorbs the next request) and broadcasts. */
  private sample(): void {
    if (this.sampling) return;
    this.sampling = (async () => {
      try {
        await this.appliance.devices.diagnose();
      } catch {
        // The firmware is restarting after a watchdog reset; the next tick samples the new one.
      }
      const status = this.status();
      const sample: PageSample = {
        at: this.board.clock.now(),
        readings: Object.fromEntries(status.components.map((c) => [c.id, numericReadings(c.reading)])),
        states: Object.fromEntries(status.components.map((c) => [c.id, c.state])),
      };
      this.history.push(sample);
      if (this.history.length > this.historyLimit) this.history.shift();
      this.broadcast('sample', sample);
      this.broadcast('status', status);
    })().finally(() => {
      this.sampling = undefined;
      if (this.resample) {
        this.resample = false;
        this.sample();
      }
    });
  }

  /** Ends the streams and the subscriptions; the endpoint closing its connections ends them too. */
  close(): void {
    this.stopTicker();
    for (const res of this.clients.keys()) res.end();
    this.clients.clear();
    for (const off of this.unsubscribe) off();
    for (const { playback } of this.playbacks) playback.stop();
  }
}
