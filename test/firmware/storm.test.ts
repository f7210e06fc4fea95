/**
 * Volume through the running firmware: a healthy board never resets a connection, and a storm of
 * connects shares diagnoses and leaves memory where it found it.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers/wait.js';
import { applianceConfig, open, readInputRegisters, startAppliance } from './helpers.js';

const execFileAsync = promisify(execFile);
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** One Modbus round trip on a fresh connection; rejects on any reset or early close. */
function roundTrip(port: number, id: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('error', reject);
    socket.once('end', () => reject(new Error('closed by the server before answering')));
    socket.write(readInputRegisters(id & 0xffff, 0, 1));
    socket.once('data', (answer) => {
      socket.removeAllListeners('end');
      if (answer.readUInt16BE(0) !== (id & 0xffff)) reject(new Error(`answer for transaction ${answer.readUInt16BE(0)}, expected ${id & 0xffff}`));
      socket.end();
      resolve();
    });
  });
}

async function run(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        await task(i).catch((err: Error & { code?: string }) => errors.push(err.code ?? err.message));
      }
    }),
  );
  return errors;
}

describe('connection volume', () => {
  it('100,000 healthy connects from another process, zero resets', { timeout: 600_000 }, async () => {
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0, reuse: 'never' }));
    try {
      const client = new URL('../../bench/client.js', import.meta.url).pathname;
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', client, '127.0.0.1', String(port), '100000', '32'], {
        env: { ...process.env, TSX_TSCONFIG_PATH: new URL('../../bench/tsconfig.json', import.meta.url).pathname },
      });
      const stats = appliance.services[0]!.gate.stats();
      expect({ client: JSON.parse(stdout).errors, reset: stats.reset, closed: stats.closed, last: stats.lastVerdict?.failures }).toEqual({
        client: 0,
        reset: 0,
        closed: 0,
        last: [],
      });
      expect(stats.accepted).toBe(100_000);
      expect(stats.diagnosed).toBeGreaterThan(0);
    } finally {
      await appliance.stop();
    }
  });

  it('a storm of 10,000 connects: one diagnosis per verdict lifetime, memory back where it was', { timeout: 120_000 }, async () => {
    // The board clock follows the wall clock here: a verdict lifetime of an hour, so that a storm slowed
    // down by a loaded machine still falls inside one.
    const { appliance, port } = await startAppliance(applianceConfig({ recheckMs: 0, maxAgeMs: 3_600_000 }));
    try {
      const gate = appliance.services[0]!.gate;
      const held = await open(port);
      await until(() => gate.stats().held === 1, 'the first connection to be held');
      const before = heapAfterGc();
      const errors = await run(10_000, 200, (i) => roundTrip(port, i));
      await until(() => gate.stats().held === 1, 'the storm connections to close');
      const after = heapAfterGc();
      const stats = gate.stats();
      expect(errors.slice(0, 5)).toEqual([]);
      expect(stats.diagnosed).toBe(1);
      expect(stats.reused).toBe(10_000);
      expect((after - before) / 1024 / 1024).toBeLessThan(16);
      held.destroy();
    } finally {
      await appliance.stop();
    }
  });
});
