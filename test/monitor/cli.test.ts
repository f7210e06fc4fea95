/**
 * `handcheck monitor` as users run it: a real process watching a real firmware process, JSON lines
 * on a pipe, the HTTP endpoint, a config file sharded with --select, SIGTERM, and the errors it
 * refuses to start with.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Firmware, cli, handcheck, startFirmware } from '../helpers/processes.js';
import { tempDir } from './helpers.js';

interface Line {
  type: string;
  target: string;
  from: string;
  to: string;
  labels: Record<string, string>;
}

function startMonitorProcess(args: string[]): { child: ChildProcessWithoutNullStreams; next: (match: (line: Line) => boolean) => Promise<Line>; stderr: () => string } {
  const child = spawn(process.execPath, [cli, 'monitor', ...args]);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines: Line[] = [];
  const waiters: Array<{ match: (line: Line) => boolean; resolve: (line: Line) => void }> = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    const waiter = waiters.find((w) => w.match(line));
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    } else lines.push(line);
  });
  return {
    child,
    stderr: () => stderr,
    next: (match) =>
      new Promise((resolve, reject) => {
        const seen = lines.find(match);
        if (seen) {
          lines.splice(lines.indexOf(seen), 1);
          return resolve(seen);
        }
        const timer = setTimeout(() => reject(new Error(`no matching line within 8 s; stderr: ${stderr}`)), 8000);
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      }),
  };
}

describe('handcheck monitor (process)', () => {
  let firmware: Firmware;
  const tmp = tempDir();
  beforeAll(async () => {
    firmware = await startFirmware(['--log-level', 'silent']);
  });
  afterAll(async () => {
    await firmware.stop();
    tmp.remove();
  });

  it('watches the firmware from a sharded config file: JSON lines, /metrics, history (read while it writes, and after), exit 0 on SIGTERM', async () => {
    const config = join(tmp.dir, 'fleet.json');
    const db = join(tmp.dir, 'fleet.db');
    writeFileSync(
      config,
      JSON.stringify({
        defaults: { intervalMs: 200, graceMs: 100 },
        targets: [
          { name: 'osaka-1', address: `127.0.0.1:${firmware.port}`, labels: { site: 'osaka' } },
          { name: 'kyoto-1', address: `127.0.0.1:${firmware.port}`, labels: { site: 'kyoto' } },
        ],
      }),
    );
    const monitor = startMonitorProcess(['--config', config, '--select', 'site=osaka', '--db', db, '--http', '127.0.0.1:0', '--log-level', 'warn']);
    try {
      expect(await monitor.next((l) => l.to === 'up')).toMatchObject({ type: 'transition', target: 'osaka-1', from: 'unknown', labels: { site: 'osaka' } });
      const injected = await handcheck('fault', 'inject', 'board-temp', 'nack', '--control', firmware.control);
      expect(injected.code).toBe(0);
      expect(await monitor.next((l) => l.to !== 'up')).toMatchObject({ target: 'osaka-1', from: 'up', to: 'reset' });
      await handcheck('fault', 'clear', '--control', firmware.control);
      expect(await monitor.next((l) => l.to === 'up')).toMatchObject({ target: 'osaka-1', from: 'reset' });
      const http = /dashboard on (http:\/\/[\d.]+:\d+)\//.exec(monitor.stderr())![1]!;
      const metrics = await (await fetch(`${http}/metrics`)).text();
      expect(metrics).toContain('handcheck_monitor_target_up{target="osaka-1",site="osaka"} 1');
      expect(metrics).not.toContain('kyoto-1');
      expect((await fetch(`${http}/`)).headers.get('content-type')).toBe('text/html; charset=utf-8');
      // `monitor history` may run while the monitor writes: each transition is in the file before its line.
      const during = await handcheck('monitor', 'history', 'osaka-1', '--db', db, '--json');
      expect(during.code).toBe(0);
      expect(during.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Line).to)).toEqual(['up', 'reset', 'up']);
    } finally {
      const exited = new Promise<number | null>((resolve) => monitor.child.once('exit', resolve));
      monitor.child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    const history = await handcheck('monitor', 'history', 'osaka-1', '--db', db, '--json');
    expect(history.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Line).to)).toEqual(['up', 'reset', 'up']);
  });

  it('refuses a bad config with the JSON path and exit status 1, bad usage with 64', async () => {
    const config = join(tmp.dir, 'bad.json');
    writeFileSync(config, JSON.stringify({ targets: [{ address: 'host-without-port', colour: 'red' }] }));
    const bad = await handcheck('monitor', '--config', config);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('ERR_MONITOR_CONFIG');
    expect(bad.stderr).toContain('/targets/0/colour: unknown key "colour"');
    const none = await handcheck('monitor');
    expect(none).toMatchObject({ code: 64, stderr: expect.stringContaining('monitor needs at least one [NAME=]HOST:PORT, --config FILE') });
    const mode = await handcheck('monitor', '127.0.0.1:1', '--mode', 'ping');
    expect(mode).toMatchObject({ code: 64, stderr: expect.stringContaining('--mode must be probe or hold, got "ping"') });
    const help = await handcheck('monitor', '--help');
    expect(help.stdout).toContain('usage: handcheck monitor [options] [NAME=]HOST:PORT ...');
  });
});
