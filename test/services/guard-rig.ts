/**
 * What the guard tests share: a describe that needs third-party daemons and clients on top of root, the
 * daemons placed in the server namespace, the firmware (`handcheck run` on the sim board) started there
 * with the guard entries under test, and commands run from the client namespace.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Capture, type Netns, ROOT, describeAsRoot, synAcksFrom, synsTo } from '../before/netns.js';
import { until } from '../helpers/wait.js';
import type { Placement } from './upstreams.js';

export const cli = `${ROOT}/dist/app/handcheck.js`;

/** describeAsRoot, failing with `why` when a daemon or client the suite needs is missing. */
export function describeWithDaemons(why: string | undefined, name: string, body: () => void): void {
  if (why === undefined) {
    describeAsRoot(name, body);
    return;
  }
  // Root decides skip or fail as for before mode; the tools are on top of it.
  describeAsRoot(name, () => {
    it('has its third-party servers and clients', () => {
      throw new Error(why);
    });
  });
}

/** Starts a daemon inside `ns` (given late: the namespace exists once beforeAll has run). */
export function inNamespace(ns: () => Netns): Placement {
  return {
    spawner: (command, args) => ns().spawn(command, args),
    ready: (_host, port) => until(async () => (await ns().exec('ss', ['-Htln', `sport = :${port}`])).trim().length > 0, `a listener on port ${port}`, 20_000),
  };
}

export interface GuardFirmware {
  child: ChildProcess;
  /** The gate log so far: the JSON lines with an `action`. */
  decisions(): Array<Record<string, unknown>>;
  /** SIGCONT, then SIGTERM if it still runs; removes its boards.json. */
  stop(): Promise<void>;
}

/**
 * The firmware in `server` on the sim appliance with `services` in place of its own, once its log
 * says `ready`.
 */
export async function startGuardFirmware(server: Netns, services: unknown[], control: string, ready: RegExp): Promise<GuardFirmware> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-guard-'));
  const boards = JSON.parse(await readFile(join(ROOT, 'boards.json'), 'utf8')) as { boards: Array<{ id: string; services: unknown[] }> };
  boards.boards.find((b) => b.id === 'sim-appliance')!.services = services;
  await writeFile(join(dir, 'boards.json'), JSON.stringify(boards));
  const child = server.spawn(process.execPath, [cli, 'run', '--boards', join(dir, 'boards.json'), '--control', control]);
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const firmware: GuardFirmware = {
    child,
    decisions: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => 'action' in line),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let text = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (ready.test(text)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`firmware exited with ${code}: ${text}`)));
    });
  } catch (err) {
    await firmware.stop();
    throw err;
  }
  return firmware;
}

/** Runs a command in the client namespace: its exit code (-1 when it could not run) and output. */
export function inClient(client: () => Netns): (command: string, args: string[]) => Promise<{ code: number; stdout: string; stderr: string }> {
  return (command, args) =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', client().name, command, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, out, errOut) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: out, stderr: errOut });
      });
    });
}

/**
 * Runs `connect` from the client namespace with a capture on `port`: the client was refused (RST)
 * and its SYNs were never answered with a SYN/ACK - the guard's verdict came before the handshake.
 */
export async function expectRefusedAtSyn(client: Netns, port: number, connect: () => Promise<{ code: number; stderr: string }>): Promise<void> {
  const capture = await Capture.start(client, 'any', `tcp port ${port}`);
  const refused = await connect();
  const packets = await capture.stop();
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/Connection refused/);
  expect(synsTo(packets, port).length).toBeGreaterThan(0);
  expect(synAcksFrom(packets, port)).toEqual([]);
}
