/**
 * The `handcheck` commands: run the firmware, diagnose once, inject faults into a running sim
 * firmware, probe a port as a client would, list and validate board entries. `main` returns the exit
 * status; app/handcheck.ts is the executable that calls it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { type BoardsFile, loadBoards, selectBoard } from '../config/boards.js';
import { type CommandSpec, commandsHelp, parseCommand } from '../config/command-line.js';
import { HandcheckError } from '../config/errors.js';
import { historySpec, monitorSpec } from '../monitor/commands.js';
import { checkSpec } from './check-command.js';
import { flashSpec } from './flash.js';
import { type ProbeOutcome, type ProbeResult, probe } from '../monitor/probe.js';
import { type FaultKindInfo, parseFaultSpec } from '../sim/faults.js';
import { Appliance } from './appliance.js';
import { checkSimSpeed, openBoard } from './board-select.js';
import { DeviceStateManager } from '../firmware/device-state.js';
import { listenAddress } from '../firmware/firmware.js';
import { packageRoot } from './package-root.js';
import { formatHostPort } from '../config/host-port.js';

const defaultBoardsFile = process.env.HANDCHECK_BOARDS ?? resolve(packageRoot, 'boards.json');
const defaultBoard = 'sim-appliance';
const defaultControl = '127.0.0.1:9502';

export class UsageError extends HandcheckError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

const boardOptions = {
  board: { type: 'string', default: defaultBoard, value: 'ID', help: 'the board entry' },
  boards: { type: 'string', default: defaultBoardsFile, env: 'HANDCHECK_BOARDS', value: 'FILE', help: 'the boards file' },
} as const;

const runSpec = {
  command: 'run',
  summary: 'start the firmware on a board entry (the simulated appliance by default)',
  options: {
    ...boardOptions,
    listen: { type: 'string', multiple: true, value: 'SERVICE=HOST:PORT', help: "listen address of a service instead of the entry's" },
    before: { type: 'string', multiple: true, value: 'SERVICE', help: 'hold SYNs until the verdict (before mode; needs CAP_NET_ADMIN)' },
    control: { type: 'string', default: process.env.HANDCHECK_CONTROL ?? defaultControl, env: 'HANDCHECK_CONTROL', value: 'HOST:PORT', help: 'the control endpoint ("" for none)' },
    'control-token': { type: 'string', default: process.env.HANDCHECK_CONTROL_TOKEN, env: 'HANDCHECK_CONTROL_TOKEN', value: 'TOKEN', help: 'bearer token the control endpoint requires' },
    sim: { type: 'boolean', default: false, help: 'simulate any entry' },
    'sim-speed': { type: 'string', default: '1', value: 'N', help: "the sim board's clock speed" },
    'log-level': { type: 'string', default: process.env.HANDCHECK_LOG_LEVEL ?? 'info', env: 'HANDCHECK_LOG_LEVEL', value: 'LEVEL', help: 'pino log level' },
    'state-dir': { type: 'string', value: 'DIR', help: "the boot record's directory (default the entry's stateDir, /var/lib/handcheck on a linux board, a temporary directory on the sim board)" },
  },
} as const satisfies CommandSpec;

const diagSpec = {
  command: 'diag',
  summary: 'diagnose every component once and print a table; exit 1 if any failed',
  options: {
    ...boardOptions,
    sim: { type: 'boolean', default: false, help: 'simulate any entry' },
    fault: { type: 'string', multiple: true, value: 'TARGET:KIND', help: 'inject a fault first (sim only)' },
  },
} as const satisfies CommandSpec;

const faultSpec = {
  command: 'fault',
  args: 'list | inject TARGET KIND | clear [ID]',
  summary: 'inject or clear faults in a running sim firmware through its control endpoint',
  options: {
    control: { type: 'string', default: process.env.HANDCHECK_CONTROL ?? defaultControl, env: 'HANDCHECK_CONTROL', value: 'HOST:PORT', help: 'the control endpoint' },
    'control-token': { type: 'string', default: process.env.HANDCHECK_CONTROL_TOKEN, env: 'HANDCHECK_CONTROL_TOKEN', value: 'TOKEN', help: 'bearer token of the control endpoint' },
    duration: { type: 'string', value: 'MS', help: 'inject: clear the fault after MS' },
    times: { type: 'string', value: 'N', help: 'inject: act N times, then clear' },
    at: { type: 'string', value: 'MS', help: "inject: start at MS on the board's clock" },
    param: { type: 'string', multiple: true, value: 'K=V', help: "inject: a parameter of the fault kind" },
    json: { type: 'boolean', default: false, help: 'list: the JSON the control endpoint answers instead of tables' },
  },
} as const satisfies CommandSpec;

const probeSpec = {
  command: 'probe',
  args: 'HOST:PORT',
  summary: 'connect as a client would and report up/refused/reset/closed/timeout/unreachable/error',
  description: 'Connect as a client would and report what TCP showed; exit status by result: up 0, refused 2,\nreset 3, closed 4, timeout 5, unreachable 6, error 7.',
  options: {
    grace: { type: 'string', default: '300', value: 'MS', help: 'how long the connection must stay open to count as up' },
    timeout: { type: 'string', default: '2000', value: 'MS', help: 'how long to wait for the SYN/ACK' },
  },
} as const satisfies CommandSpec;

const boardsSpec = {
  command: 'boards',
  summary: 'list the board entries of a boards file, validating it',
  options: {
    boards: boardOptions.boards,
  },
} as const satisfies CommandSpec;

/** Every command's definition, in the order `handcheck --help` lists them. */
export function commandSpecs(): CommandSpec[] {
  return [runSpec, diagSpec, faultSpec, probeSpec, monitorSpec, historySpec, boardsSpec, checkSpec({ boardsFile: defaultBoardsFile, board: defaultBoard }), flashSpec({ boardsFile: defaultBoardsFile })];
}

function multi(values: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values ?? []) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`${what} must be NAME=VALUE, got "${value}"`);
    out[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return out;
}

async function board(file: string, id: string): Promise<{ boards: BoardsFile; config: ReturnType<typeof selectBoard> }> {
  const boards = await loadBoards(file);
  return { boards, config: selectBoard(boards, id) };
}

async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(runSpec, argv);
  if (!parsed) return 0;
  const { values } = parsed;
  const logger = pino({ level: values['log-level'], base: { board: values.board } });
  if (values['state-dir'] === '') throw new UsageError('--state-dir must name a directory');
  const simSpeed = Number(values['sim-speed']);
  if (!(simSpeed > 0)) throw new UsageError(`--sim-speed must be a positive number, got "${values['sim-speed']}"`);
  const { config } = await board(values.boards, values.board);
  checkSimSpeed(config, { forceSim: values.sim, simSpeed });
  if (config.backend === 'linux' && !values.sim) {
    const { printSelfCheck } = await import('./check-command.js');
    await printSelfCheck(config, (text) => process.stderr.write(text));
  }
  const appliance = await Appliance.start({
    config,
    logger,
    listen: multi(values.listen, '--listen'),
    modes: Object.fromEntries((values.before ?? []).map((service) => [service, 'before' as const])),
    control: values.control,
    controlToken: values['control-token'],
    forceSim: values.sim,
    simSpeed,
    ...(values['state-dir'] !== undefined ? { stateDir: resolve(values['state-dir']) } : {}),
  });
  const lines = [`handcheck: board ${config.id} (${config.name}) on ${appliance.board.sim ? 'the sim board' : 'real hardware'}`];
  for (const service of appliance.services) {
    const p = service.gate.policy;
    const { id, kind, protocol, upstream, probe } = service.config;
    const where = formatHostPort(service);
    if (kind === 'guard') {
      lines.push(`handcheck: service ${id} (guard) holding SYNs for ${where}, where another process listens - failClosed ${String(p.failClosed)}, probe ${probe?.type ?? 'none'}`);
    }
    else if (kind === 'proxy') lines.push(`handcheck: service ${id} (proxy to ${upstream ?? '?'}) listening on ${where} - gate ${p.mode}, onFail ${p.onFail}, reuse ${p.reuse}`);
    else lines.push(`handcheck: service ${id} (${protocol ?? 'modbus-tcp'}) listening on ${where} - gate ${p.mode}, onFail ${p.onFail}, reuse ${p.reuse}`);
  }
  const control = appliance.controlAddress;
  if (control) {
    lines.push(`handcheck: control endpoint on http://${formatHostPort(control)}/status`);
    if (appliance.board.sim) lines.push(`handcheck: sim board page on http://${formatHostPort(control)}/`);
  }
  process.stderr.write(`${lines.join('\n')}\n`);

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      appliance.stop({ magic: true }).then(
        () => resolveExit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolveExit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function formatReading(reading: Record<string, unknown> | undefined): string {
  if (!reading) return '';
  return Object.entries(reading)
    .filter(([, v]) => typeof v !== 'object')
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v)}`)
    .join(' ');
}

async function diag(argv: string[]): Promise<number> {
  const parsed = parseCommand(diagSpec, argv);
  if (!parsed) return 0;
  const { values } = parsed;
  const { config } = await board(values.boards, values.board);
  // A one-shot diagnosis of the sim board runs its clock as fast as the models allow: on a busy
  // laptop, a clock following real time made healthy simulated parts miss their deadlines.
  const opened = await openBoard(config, { forceSim: values.sim, simClock: 'manual' });
  try {
    for (const fault of values.fault ?? []) {
      const [target, kind] = fault.split(':');
      if (!opened.sim) throw new UsageError('--fault needs the sim board (fault injection exists only there)');
      if (!target || !kind) throw new UsageError(`--fault must be TARGET:KIND, got "${fault}"`);
      opened.sim.faults.inject(parseFaultSpec({ target, kind }));
    }
    const devices = new DeviceStateManager({
      board: opened.hal,
      logger: pino({ level: 'silent' }),
      watchdogHealth: () => ({ health: 'ok', reason: '', reading: { note: 'not kept by a one-shot diagnosis' } }),
    });
    const states = await (opened.sim ? opened.sim.clock.runUntil(devices.diagnose()) : devices.diagnose());
    await devices.close();
    const rows = [['COMPONENT', 'KIND', 'STATE', 'ms', 'READING / REASON']];
    for (const s of states) rows.push([s.id, s.kind, s.state, String(Math.round((s.durationMs ?? 0) * 10) / 10), s.reason || formatReading(s.reading)]);
    process.stdout.write(`${table(rows)}\n`);
    return states.some((s) => s.state === 'failed') ? 1 : 0;
  } finally {
    await opened.hal.close();
  }
}

async function controlRequest(where: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<unknown> {
  const { host, port } = listenAddress('control', where);
  const response = await fetch(`http://${formatHostPort({ host, port })}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }).catch((err: unknown) => {
    throw new UsageError(`cannot reach the control endpoint at ${where}: ${(err as Error).cause ?? (err as Error).message}`);
  });
  const json = (await response.json()) as { error?: { code: string; message: string } };
  if (!response.ok) throw new HandcheckError(json.error?.code ?? 'ERR_CONTROL_INTERNAL', json.error?.message ?? `HTTP ${response.status}`);
  return json;
}

async function fault(argv: string[]): Promise<number> {
  const parsed = parseCommand(faultSpec, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const [action, ...rest] = positionals;
  const token = values['control-token'];
  let result: unknown;
  if (action === 'list') {
    const listed = (await controlRequest(values.control, token, 'GET', '/faults')) as FaultListing;
    process.stdout.write(values.json ? `${JSON.stringify(listed, null, 2)}\n` : faultTables(listed));
    return 0;
  } else if (action === 'clear') result = await controlRequest(values.control, token, 'DELETE', rest[0] ? `/faults/${encodeURIComponent(rest[0])}` : '/faults');
  else if (action === 'inject') {
    const [target, kind] = rest;
    if (!target || !kind) throw new UsageError('fault inject needs TARGET and KIND');
    const number = (value: string | undefined, name: string): number | undefined => {
      if (value === undefined) return undefined;
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${value}"`);
      return n;
    };
    const params = Object.fromEntries(
      Object.entries(multi(values.param, '--param')).map(([k, v]) => [k, v === 'true' ? true : v === 'false' ? false : Number.isFinite(Number(v)) ? Number(v) : v]),
    );
    result = await controlRequest(values.control, token, 'POST', '/faults', {
      target,
      kind,
      ...(values.duration ? { durationMs: number(values.duration, 'duration') } : {}),
      ...(values.times ? { times: number(values.times, 'times') } : {}),
      ...(values.at ? { atMs: number(values.at, 'at') } : {}),
      ...(Object.keys(params).length > 0 ? { params } : {}),
    });
  } else throw new UsageError(`fault needs list, inject or clear, got "${action ?? ''}"`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

interface FaultListing {
  kinds: Record<string, FaultKindInfo[]>;
  active: Array<{ id: string; target: string; kind: string; remaining?: number | null }>;
}

function paramText(params: FaultKindInfo['params']): string {
  return Object.entries(params ?? {})
    .map(([name, rule]) => (rule.type === 'number' ? `${name}=${rule.min}..${rule.max}` : `${name}=${rule.values?.join('|') ?? 'text'}`))
    .join(' ');
}

/** The catalogue as a person reads it: one row per target and kind, then the active faults. */
function faultTables(listed: FaultListing): string {
  const rows = [['TARGET', 'KIND', 'PARAMS', 'WHAT IT MODELS']];
  for (const [target, kinds] of Object.entries(listed.kinds)) {
    kinds.forEach((info, i) => rows.push([i === 0 ? target : '', info.kind, paramText(info.params), info.description]));
  }
  const active =
    listed.active.length === 0
      ? 'no active faults'
      : table([['ID', 'TARGET', 'KIND', 'OPERATIONS LEFT'], ...listed.active.map((f) => [f.id, f.target, f.kind, f.remaining == null ? '-' : String(f.remaining)])]);
  return `${table(rows)}\n\n${active}\n`;
}

const probeExit: Record<ProbeResult, number> = { up: 0, refused: 2, reset: 3, closed: 4, timeout: 5, unreachable: 6, error: 7 };

async function probeCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(probeSpec, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError('probe needs exactly one HOST:PORT');
  const { host, port } = listenAddress('probe', positionals[0]!);
  const outcome = await probe({ host, port, graceMs: Number(values.grace), connectTimeoutMs: Number(values.timeout) });
  process.stdout.write(`${positionals[0]} ${outcome.result} ${probeDetail(outcome, Number(values.timeout))}\n`);
  return probeExit[outcome.result];
}

/**
 * What the connect showed, in its own terms: the time to the SYN/ACK only when the connect was seen
 * established; a reset or close after it with its own time; otherwise the time to the answer or failure.
 */
export function probeDetail(outcome: ProbeOutcome, timeoutMs: number): string {
  const ms = (value: number): string => `${value.toFixed(2)} ms`;
  const errno = outcome.errno ? ` (${outcome.errno})` : '';
  const fin = outcome.finAfterMs === undefined ? '' : `; a FIN came ${ms(outcome.finAfterMs)} after the first connect, the second connect did not confirm it`;
  switch (outcome.result) {
    case 'up':
      return `connected in ${ms(outcome.connectMs)}${fin}`;
    case 'reset':
    case 'closed': {
      const cut = outcome.result === 'reset' ? 'reset' : 'closed (FIN)';
      // An RST that overtakes the connect callback: the handshake completed, but the RST was all this host saw.
      if (outcome.cutAfterMs === undefined) return `${cut} ${ms(outcome.connectMs)} after the SYN, before the established connection was reported here${errno}${fin}`;
      return `connected in ${ms(outcome.connectMs)}, ${cut} ${ms(outcome.cutAfterMs)} later${errno}${fin}`;
    }
    case 'refused':
      return `RST to the SYN after ${ms(outcome.connectMs)}${errno}`;
    case 'timeout':
      return `no SYN/ACK within ${timeoutMs} ms${errno}`;
    default:
      return `after ${ms(outcome.connectMs)}${errno}`;
  }
}

async function boardsCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(boardsSpec, argv);
  if (!parsed) return 0;
  const { values } = parsed;
  const boards = await loadBoards(values.boards);
  const rows = [['ID', 'BACKEND', 'COMPONENTS', 'SERVICES', 'NAME']];
  for (const b of boards.boards) rows.push([b.id, b.backend, String(b.components.length), b.services.map((s) => `${s.id}@${s.listen}`).join(','), b.name]);
  process.stdout.write(`${table(rows)}\n${values.boards}: ${boards.boards.length} board entries, valid\n`);
  return 0;
}

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  run,
  diag,
  fault,
  probe: probeCommand,
  // Commands that pull in heavy modules (SQLite, the build toolchain) load them only when run, so
  // the firmware process stays small.
  monitor: async (argv) => (await import('../monitor/cli.js')).monitorCommand(argv),
  boards: boardsCommand,
  check: async (argv) => (await import('./check-command.js')).checkCommand(argv, { boardsFile: defaultBoardsFile, board: defaultBoard }),
  flash: async (argv) => (await import('./flash.js')).flashCommand(argv, { boardsFile: defaultBoardsFile, packageRoot }),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(commandsHelp(commandSpecs()));
    return command ? 0 : 64;
  }
  if (command === '--version') {
    process.stdout.write(`${(JSON.parse(readFileSync(resolve(packageRoot, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    return 0;
  }
  const handler = commands[command];
  if (!handler) {
    process.stderr.write(`handcheck: unknown command "${command}"\n${commandsHelp(commandSpecs())}`);
    return 64;
  }
  try {
    return await handler(rest);
  } catch (err) {
    const code = err instanceof HandcheckError ? err.code : ((err as { code?: string }).code ?? 'ERR_UNEXPECTED');
    process.stderr.write(`handcheck ${command}: ${code}: ${err instanceof Error ? err.message : String(err)}\n`);
    return code === 'ERR_USAGE' || code === 'ERR_SIM_SPEED_REAL_TIME' || code.startsWith('ERR_PARSE_ARGS') ? 64 : 1;
  }
}
