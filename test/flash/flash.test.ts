/**
 * `handcheck flash` as users run it: into a directory, then the installed firmware started from there
 * (on the sim board) and probed; and over ssh to an sshd in a network namespace, with the install and
 * restart commands replaced by ones that leave a trace (this machine runs no systemd).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseFlashTarget, remoteScript, shellQuote } from '../../app/flash.js';
import { CLIENT_V4, Netns, SERVER_V4, link } from '../before/netns.js';
import { waitForOutput } from '../helpers/wait.js';
import { makeTempDir } from '../linux/fake-sysfs.js';
import { describeAsRoot } from '../linux/root.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'app', 'handcheck.js');
const exec = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(file, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let temp: Awaited<ReturnType<typeof makeTempDir>>;
beforeEach(async () => {
  temp = await makeTempDir('flash');
});
afterEach(async () => {
  await temp.remove();
});

describe('flash targets', () => {
  it('reads USER@HOST:DIR and HOST:DIR as ssh, anything with a slash before a colon as a directory', () => {
    expect(parseFlashTarget('pi@raspberrypi.local:/opt/handcheck')).toEqual({ kind: 'ssh', destination: 'pi@raspberrypi.local', dir: '/opt/handcheck' });
    expect(parseFlashTarget('pi5:handcheck')).toEqual({ kind: 'ssh', destination: 'pi5', dir: 'handcheck' });
    expect(parseFlashTarget('/mnt/rootfs/opt/handcheck')).toEqual({ kind: 'dir', dir: '/mnt/rootfs/opt/handcheck' });
    expect(parseFlashTarget('./a:b')).toEqual({ kind: 'dir', dir: join(process.cwd(), 'a:b') });
    expect(() => parseFlashTarget('pi@host:')).toThrow(expect.objectContaining({ code: 'ERR_FLASH_TARGET' }));
    expect(() => parseFlashTarget('-oProxyCommand=x:dir')).toThrow(expect.objectContaining({ code: 'ERR_FLASH_TARGET' }));
  });

  it('quotes the remote directory so that a shell runs it as one word', async () => {
    const dir = join(temp.dir, "it's a dir");
    const script = remoteScript(dir, '', 'pwd > "$dir.where"');
    const tar = spawn('tar', ['-czf', '-', '-C', ROOT, 'deploy'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sh = spawn('sh', ['-c', script], { stdio: ['pipe', 'inherit', 'inherit'] });
    tar.stdout.pipe(sh.stdin);
    expect(await new Promise((resolve) => sh.once('exit', resolve))).toBe(0);
    expect(await readFile(`${dir}.where`, 'utf8')).toBe(`${dir}\n`);
    expect(existsSync(join(dir, 'deploy', 'install.sh'))).toBe(true);
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe('handcheck flash --to DIR', () => {
  it('lays out a tree that runs on its own: built code, production modules, the board entry, unit, rules, installer', { timeout: 300_000 }, async () => {
    const dir = join(temp.dir, 'opt', 'handcheck');
    const flashed = await run(process.execPath, [CLI, 'flash', '--board', 'rpi4', '--to', dir]);
    expect(flashed.stderr).toContain('flash: building');
    expect(flashed.code).toBe(0);

    const boards = JSON.parse(await readFile(join(dir, 'boards.json'), 'utf8')) as { $schema: string; boards: Array<{ id: string }> };
    expect(boards.$schema).toBe('./boards.schema.json');
    expect(boards.boards.map((b) => b.id)).toEqual(['rpi4']);
    const manifest = JSON.parse(await readFile(join(dir, 'FLASHED.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ board: 'rpi4', version: '0.1.0', platform: `${process.platform}-${process.arch}-abi${process.versions.modules}` });
    expect(await readFile(join(dir, 'node_modules', '.handcheck-platform'), 'utf8')).toBe(`${manifest.platform}\n`);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.scripts).toBeUndefined();
    expect(existsSync(join(dir, 'package-lock.json'))).toBe(true);
    // Production dependencies only: pino is one, vitest and typescript are not.
    const modules = await readdir(join(dir, 'node_modules'));
    expect(modules).toEqual(expect.arrayContaining(['pino', 'ajv', 'prom-client', 'onoff', 'i2c-bus', 'serialport']));
    expect(modules).not.toContain('vitest');
    expect(modules).not.toContain('typescript');
    expect(existsSync(join(dir, 'dist', 'app', 'flash.js'))).toBe(true);
    expect(existsSync(join(dir, 'dist', 'boards.schema.json'))).toBe(true);

    const unit = await readFile(join(dir, 'deploy', 'handcheck.service'), 'utf8');
    expect(unit).toContain('ExecStart=@NODE@ --max-semi-space-size=1 --optimize-for-size @DIR@/dist/app/handcheck.js run --board rpi4 --boards @DIR@/boards.json');
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN$/m);
    expect(unit).toMatch(/^SupplementaryGroups=gpio i2c dialout$/m);
    expect(unit).not.toMatch(/^WatchdogSec=/m);
    expect(unit).toMatch(/^StateDirectory=handcheck$/m);
    const rules = await readFile(join(dir, 'deploy', '99-handcheck.rules'), 'utf8');
    expect(rules).toMatch(/^KERNEL=="watchdog\*", SUBSYSTEM=="watchdog", GROUP="handcheck", MODE="0660"$/m);
    expect(rules).toMatch(/^SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"$/m);
    expect((await stat(join(dir, 'deploy', 'install.sh'))).mode & 0o111).toBe(0o111);

    // The installer, staged under DESTDIR: the unit gets this tree's path and the node found on PATH.
    const destdir = join(temp.dir, 'image');
    const installed = await run(join(dir, 'deploy', 'install.sh'), [], { env: { ...process.env, DESTDIR: destdir } });
    expect(installed.stderr).toBe('');
    expect(installed.code).toBe(0);
    const placed = await readFile(join(destdir, 'etc', 'systemd', 'system', 'handcheck.service'), 'utf8');
    const node = (await run('sh', ['-c', 'command -v node'])).stdout.trim();
    expect(placed).toContain(`ExecStart=${node} --max-semi-space-size=1 --optimize-for-size ${dir}/dist/app/handcheck.js run --board rpi4 --boards ${dir}/boards.json`);
    expect(placed).toContain(`WorkingDirectory=${dir}\n`);
    expect(await readFile(join(destdir, 'etc', 'udev', 'rules.d', '99-handcheck.rules'), 'utf8')).toBe(rules);

    // Started from the tree, outside the source checkout, on the sim board; probed with the tree's own CLI.
    const firmware = spawn(process.execPath, [join(dir, 'dist', 'app', 'handcheck.js'), 'run', '--board', 'rpi4', '--sim', '--listen', 'modbus=127.0.0.1:0', '--control', '127.0.0.1:0'], {
      cwd: temp.dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const [[, port], [, control]] = await Promise.all([
        waitForOutput(firmware, /service modbus \(modbus-tcp\) listening on 127\.0\.0\.1:(\d+)/, 'installed firmware'),
        waitForOutput(firmware, /control endpoint on http:\/\/127\.0\.0\.1:(\d+)/, 'installed firmware'),
      ]);
      const probe = await run(process.execPath, [join(dir, 'dist', 'app', 'handcheck.js'), 'probe', `127.0.0.1:${port}`], { cwd: temp.dir });
      expect(probe.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} up `));
      expect(probe.code).toBe(0);
      // The board page ships with the tree: the control endpoint serves it from there.
      const page = await fetch(`http://127.0.0.1:${control}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<html');
    } finally {
      const exited = new Promise((resolve) => firmware.once('exit', resolve));
      firmware.kill('SIGTERM');
      expect(await exited).toBe(0);
    }

    // A second flash replaces the first as a whole; a directory that is not a flash is left alone.
    await writeFile(join(dir, 'stale.txt'), 'from before');
    const again = await run(process.execPath, [CLI, 'flash', '--board', 'rpi5', '--to', dir, '--no-build']);
    expect(again.code).toBe(0);
    expect(existsSync(join(dir, 'stale.txt'))).toBe(false);
    expect(JSON.parse(await readFile(join(dir, 'boards.json'), 'utf8')).boards[0].id).toBe('rpi5');
    const foreign = join(temp.dir, 'home');
    await mkdir(foreign);
    await writeFile(join(foreign, 'notes.txt'), 'keep me');
    const refused = await run(process.execPath, [CLI, 'flash', '--board', 'rpi4', '--to', foreign, '--no-build']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERR_FLASH_TARGET');
    expect(await readdir(foreign)).toEqual(['notes.txt']);
    expect((await readdir(temp.dir)).filter((name) => name.includes('handcheck-new'))).toEqual([]);
  });

  it('names a missing board before building anything', async () => {
    const result = await run(process.execPath, [CLI, 'flash', '--board', 'rpi9', '--to', join(temp.dir, 'x')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('rpi9');
    expect(result.stderr).not.toContain('flash: building');
    expect(existsSync(join(temp.dir, 'x'))).toBe(false);
  });
});

describeAsRoot('handcheck flash over ssh', 'an sshd in a network namespace', ['ip', '/usr/sbin/sshd', 'ssh', 'ssh-keygen'], () => {
  let server: Netns;
  let client: Netns;
  let sshd: ChildProcess;
  let keys: Awaited<ReturnType<typeof makeTempDir>>;

  beforeAll(async () => {
    keys = await makeTempDir('sshd');
    server = await Netns.create('flash-srv');
    client = await Netns.create('flash-cli');
    await link(server, client);
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys.dir, 'host_key')]);
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys.dir, 'id')]);
    await writeFile(join(keys.dir, 'authorized_keys'), await readFile(join(keys.dir, 'id.pub')));
    await writeFile(
      join(keys.dir, 'sshd_config'),
      [
        `ListenAddress ${SERVER_V4}`,
        'Port 22',
        `HostKey ${join(keys.dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(keys.dir, 'authorized_keys')}`,
        `PidFile ${join(keys.dir, 'sshd.pid')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        '',
      ].join('\n'),
    );
    // Debian's sshd refuses to start without its privilege separation directory, which systemd would create.
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    sshd = server.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(keys.dir, 'sshd_config')]);
    await waitForOutput(sshd, /Server listening on 198\.18\.0\.1 port 22/, 'sshd');
  });

  afterAll(async () => {
    sshd?.kill('SIGTERM');
    await client?.destroy();
    await server?.destroy();
    await keys?.remove();
  });

  const sshArgs = (): string[] => [
    '--identity',
    join(keys.dir, 'id'),
    '--ssh-option',
    'StrictHostKeyChecking=no',
    '--ssh-option',
    'UserKnownHostsFile=/dev/null',
    '--ssh-option',
    'LogLevel=ERROR',
  ];

  it('sends the tree as a tar stream, swaps it in, runs the install and restart commands in it', { timeout: 120_000 }, async () => {
    const dir = join(temp.dir, 'opt', 'handcheck');
    const destdir = join(temp.dir, 'image');
    const trace = join(temp.dir, 'restarted');
    const args = [
      CLI, 'flash', '--board', 'rpi4', '--to', `root@${SERVER_V4}:${dir}`, '--no-build', ...sshArgs(),
      '--install-command', `DESTDIR=${shellQuote(destdir)} ./deploy/install.sh`,
      '--restart-command', `echo "restart in $(pwd) from $SSH_CLIENT" > ${shellQuote(trace)}`,
    ];
    const out = await client.exec('env', [`PATH=${process.env.PATH}`, process.execPath, ...args], 110_000).catch((err: Error) => err.message);
    expect(out).toBe('');

    expect(JSON.parse(await readFile(join(dir, 'FLASHED.json'), 'utf8')).board).toBe('rpi4');
    expect(await readFile(join(dir, 'dist', 'app', 'handcheck.js'))).toEqual(await readFile(CLI));
    expect(JSON.parse(await readFile(join(dir, 'boards.json'), 'utf8')).boards.map((b: { id: string }) => b.id)).toEqual(['rpi4']);
    // The restart ran on the board side of the link, in the new tree, after the install.
    expect(await readFile(trace, 'utf8')).toMatch(new RegExp(`^restart in ${dir} from ${CLIENT_V4.replaceAll('.', '\\.')} \\d+ 22\\n$`));
    const unit = await readFile(join(destdir, 'etc', 'systemd', 'system', 'handcheck.service'), 'utf8');
    expect(unit).toContain(`ExecStart=/usr/bin/node --max-semi-space-size=1 --optimize-for-size ${dir}/dist/app/handcheck.js run --board rpi4`);
  });

  it('fails with ERR_FLASH_REMOTE and the board\'s own words when a command there fails', { timeout: 120_000 }, async () => {
    const dir = join(temp.dir, 'handcheck');
    const result = await client
      .exec('env', [
        `PATH=${process.env.PATH}`, process.execPath, CLI, 'flash', '--board', 'rpi5', '--to', `root@${SERVER_V4}:${dir}`, '--no-build', ...sshArgs(),
        '--install-command', '', '--restart-command', 'echo "unit handcheck.service not found" >&2; exit 5',
      ], 110_000)
      .then(
        () => 'exit 0',
        (err: Error) => err.message,
      );
    expect(result).toContain('ERR_FLASH_REMOTE');
    expect(result).toContain('exited with 5');
    expect(result).toContain('unit handcheck.service not found');
    // The tree itself arrived before the restart failed.
    expect(JSON.parse(await readFile(join(dir, 'boards.json'), 'utf8')).boards[0].id).toBe('rpi5');
  });
});
