/**
 * The command line of a fleet's monitor, as users run it: `--help` on every command (one definition
 * for the parser and the help), `monitor history` on a database that is not there, a config's
 * problems reported all at once, IPv6 in brackets, every result with --results, --select on discovered targets, SIGHUP reloading the targets, one `subsystem` key
 * per log line, one monitor per database, a corrupted database named with SQLite's code.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandSpecs } from '../../app/cli.js';
import { commandHelp } from '../../config/command-line.js';
import { handcheck } from '../helpers/processes.js';
import { until, waitForOutput } from '../helpers/wait.js';
import { monitorProcess, tempDir } from './helpers.js';

describe('handcheck --help', () => {
  it('lists every command, and each command prints its own help with every option it parses', async () => {
    const top = await handcheck('--help');
    expect(top.code).toBe(0);
    for (const spec of commandSpecs()) {
      expect(top.stdout).toContain(`  ${spec.command} `);
      const help = await handcheck(...spec.command.split(' '), '--help');
      expect(help, spec.command).toMatchObject({ code: 0, stdout: commandHelp(spec) });
      expect(help.stdout.startsWith(`usage: handcheck ${spec.command} `)).toBe(true);
      for (const name of Object.keys(spec.options)) expect(help.stdout, `${spec.command} --${name}`).toMatch(new RegExp(`^  --${name}\\b`, 'm'));
    }
  }, 60_000);
});

describe('monitor command line', () => {
  const tmp = tempDir();
  let listener: Server;
  let v6: Server;
  beforeAll(async () => {
    listener = createServer((socket) => socket.on('error', () => undefined));
    v6 = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => listener.close(resolve));
    await new Promise((resolve) => v6.close(resolve));
    tmp.remove();
  });
  const port = (): number => (listener.address() as AddressInfo).port;

  it('monitor history on a missing database creates none and names the file', async () => {
    const db = join(tmp.dir, 'missing.db');
    const result = await handcheck('monitor', 'history', 'x', '--db', db);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`ERR_MONITOR_HISTORY: ${db}: no such history database`);
    expect(existsSync(db)).toBe(false);
  });

  it('a corrupted database is named with the SQLite code, for the monitor and for history', async () => {
    const notADb = join(tmp.dir, 'garbage.db');
    writeFileSync(notADb, 'this is not a database, whatever its name says '.repeat(100));
    const history = await handcheck('monitor', 'history', 'x', '--db', notADb);
    expect(history.stderr).toMatch(new RegExp(`ERR_MONITOR_HISTORY: ${notADb}: cannot open the history database: SQLITE_NOTADB: file is not a database`));
    const monitor = await handcheck('monitor', `127.0.0.1:${port()}`, '--db', notADb);
    expect(monitor.code).toBe(1);
    expect(monitor.stderr).toContain(`ERR_MONITOR_HISTORY: ${notADb}: cannot open the history database: SQLITE_NOTADB`);

    // A real database whose table pages are overwritten: SQLite's own check reports SQLITE_CORRUPT.
    const corrupt = join(tmp.dir, 'corrupt.db');
    const db = new Database(corrupt);
    db.exec('CREATE TABLE transitions (id INTEGER PRIMARY KEY, target TEXT NOT NULL, at INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL, connect_ms REAL)');
    const insert = db.prepare('INSERT INTO transitions (target, at, from_state, to_state, reason, connect_ms) VALUES (?, ?, ?, ?, ?, ?)');
    for (let i = 0; i < 2000; i++) insert.run('x', i, 'up', 'reset', 'RST 0.4 ms after the handshake, for long enough to fill pages', 0.4);
    db.pragma('user_version = 1');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(corrupt, 'r+');
    writeSync(fd, Buffer.alloc(pageSize * 4, 0xa5), 0, pageSize * 4, pageSize * 3);
    closeSync(fd);
    const read = await handcheck('monitor', 'history', 'x', '--db', corrupt);
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(new RegExp(`ERR_MONITOR_HISTORY: ${corrupt}: cannot read the history: SQLITE_CORRUPT`));
  }, 60_000);

  it('a config with an unknown key reports its other problems too', async () => {
    const config = join(tmp.dir, 'bad.json');
    writeFileSync(config, JSON.stringify({ targets: [{ address: 'nohost', colour: 'red', labels: { instance: 'x' } }], surprise: true }));
    const result = await handcheck('monitor', '--config', config);
    expect(result.code).toBe(1);
    for (const path of ['/surprise', '/targets/0/colour', '/targets/0/address', '/targets/0/labels/instance']) expect(result.stderr).toContain(`${path}: `);
  }, 30_000);

  it('prints IPv6 addresses in brackets', async () => {
    const v6port = (v6.address() as AddressInfo).port;
    const monitor = monitorProcess([`[::1]:${v6port}`, '--interval', '100', '--grace', '20', '--http', '[::1]:0']);
    try {
      await until(() => monitor.lines.length > 0, 'the first transition', 20_000);
      expect(monitor.lines[0]).toMatchObject({ type: 'transition', target: `[::1]:${v6port}`, address: `[::1]:${v6port}`, to: 'up' });
      expect(monitor.stderr()).toMatch(/dashboard on http:\/\/\[::1\]:\d+\//);
    } finally {
      await monitor.stop();
    }
  });

  it('with --results writes every result as a JSON line, not only the transitions', async () => {
    const monitor = monitorProcess([`pump=127.0.0.1:${port()}`, '--results', '--interval', '100', '--grace', '20']);
    try {
      await until(() => monitor.lines.filter((l) => l.type === 'result').length >= 3, 'three results', 20_000);
      // The lines up to the third result.
      const lines = monitor.lines.slice(0, monitor.lines.indexOf(monitor.lines.filter((l) => l.type === 'result')[2]!) + 1);
      expect(lines.filter((l) => l.type === 'result')).toEqual(Array.from({ length: 3 }, () => expect.objectContaining({ target: 'pump', result: 'up', reason: expect.stringMatching(/^handshake in /) as string })));
      // One transition among them: a healthy target's results are no news.
      expect(lines.filter((l) => l.type === 'transition')).toEqual([expect.objectContaining({ from: 'unknown', to: 'up' })]);
    } finally {
      await monitor.stop();
    }
  });

  it('--select applies to the targets of --file-sd too', async () => {
    const file = join(tmp.dir, 'appliances.json');
    writeFileSync(
      file,
      JSON.stringify([
        { targets: [`127.0.0.1:${port()}`], labels: { site: 'osaka', __handcheck_name: 'osaka-1' } },
        { targets: [`[::1]:${(v6.address() as AddressInfo).port}`], labels: { site: 'kyoto', __handcheck_name: 'kyoto-1' } },
      ]),
    );
    const monitor = monitorProcess(['--file-sd', file, '--select', 'site=osaka', '--interval', '100', '--grace', '20', '--http', '127.0.0.1:0', '--log-level', 'warn']);
    try {
      await until(() => monitor.lines.some((l) => l.target === 'osaka-1' && l.to === 'up'), 'osaka-1 up', 20_000);
      await until(() => /dashboard on http/.test(monitor.stderr()), 'the dashboard address', 20_000);
      const http = /dashboard on (http:\/\/[\d.]+:\d+)\//.exec(monitor.stderr())![1]!;
      const { targets } = (await (await fetch(`${http}/api/targets`)).json()) as { targets: Array<{ name: string }> };
      expect(targets.map((t) => t.name)).toEqual(['osaka-1']);
    } finally {
      await monitor.stop();
    }
  });

  it('reloads the targets from --config on SIGHUP; a config that no longer loads changes nothing', async () => {
    const config = join(tmp.dir, 'fleet.json');
    writeFileSync(config, JSON.stringify({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [{ name: 'a', address: `127.0.0.1:${port()}` }] }));
    const monitor = monitorProcess(['--config', config]);
    try {
      await until(() => monitor.lines.some((l) => l.target === 'a'), 'target a', 20_000);
      writeFileSync(config, JSON.stringify({ defaults: { intervalMs: 100, graceMs: 20 }, targets: [{ name: 'a', address: `127.0.0.1:${port()}` }, { name: 'b', address: `127.0.0.1:${port()}` }] }));
      monitor.child.kill('SIGHUP');
      await until(() => monitor.lines.some((l) => l.target === 'b' && l.to === 'up'), 'target b after SIGHUP', 20_000);
      writeFileSync(config, '{"targets": [');
      monitor.child.kill('SIGHUP');
      await waitForOutput(monitor.child, /SIGHUP: the config does not load; keeping the targets as they are/, 'the refused reload');
      expect(monitor.child.exitCode).toBeNull();
    } finally {
      await monitor.stop();
    }
  }, 60_000);

  it('refuses a second monitor on the same database; log lines carry one subsystem key', async () => {
    const db = join(tmp.dir, 'shared.db');
    const first = monitorProcess([`127.0.0.1:1`, '--interval', '100', '--grace', '20', '--timeout', '50', '--db', db, '--alert-command', 'exit 3', '--alert-retries', '0']);
    try {
      await until(() => first.lines.length > 0, 'the first monitor to record a transition', 20_000);
      const second = await handcheck('monitor', `127.0.0.1:${port()}`, '--db', db);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`ERR_MONITOR_HISTORY: ${db}: another monitor is using this history database (it holds ${db}.lock)`);
      // Reading the history while the monitor runs is fine.
      expect((await handcheck('monitor', 'history', '127.0.0.1:1', '--db', db)).code).toBe(0);
      await until(() => /"subsystem":"alerts"/.test(first.stderr()), 'an alert log line', 20_000);
    } finally {
      await first.stop();
    }
    const logLines = first.stderr().split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(line.match(/"subsystem":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
  }, 60_000);
});
