/**
 * `handcheck flash --board ID --to DIR | USER@HOST:DIR`: builds the firmware and lays out a tree that
 * runs on the board as it is:
 *
 *   dist/                the firmware compiled from the sources (tsc --outDir into the tree)
 *   node_modules/        production dependencies copied from this machine, with the platform they
 *                        were built for in node_modules/.handcheck-platform; deploy/install.sh
 *                        reinstalls them with `npm ci --omit=dev` when the board's platform differs
 *   package.json, package-lock.json   for that `npm ci` (scripts removed: nothing to build there)
 *   boards.json          only the chosen board entry, as it stands in the source boards file
 *   boards.schema.json
 *   native/              the NFQUEUE addon's sources (and this machine's build, if any) for before mode
 *   deploy/              handcheck.service (systemd unit), 99-handcheck.rules (udev), install.sh
 *   app/sim-page/        the board page's static files, served by the control endpoint
 *   docs/raspberry-pi.md
 *   FLASHED.json         what was flashed, from where, when
 *
 * A directory target is replaced as a whole (staged beside it, then renamed), and only when it is
 * empty or an earlier flash. Over ssh the tree travels as a tar stream into the same swap on the
 * board, then the install and restart commands run there.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { type CommandSpec, parseCommand } from '../config/command-line.js';
import type { BoardConfig } from '../config/board-config.js';
import { loadBoards, selectBoard } from '../config/boards.js';
import { HandcheckError } from '../config/errors.js';

export class FlashError extends HandcheckError {}

/** `--to` is neither a directory nor USER@HOST:DIR, or names a directory that is not ours to replace. */
export class FlashTargetError extends FlashError {
  constructor(message: string) {
    super('ERR_FLASH_TARGET', message);
  }
}

/** The TypeScript build failed, or there is neither a build nor sources to build from. */
export class FlashBuildError extends FlashError {
  constructor(message: string) {
    super('ERR_FLASH_BUILD', message);
  }
}

/** The production dependencies could not be listed or are not installed here. */
export class FlashDependenciesError extends FlashError {
  constructor(message: string) {
    super('ERR_FLASH_DEPENDENCIES', message);
  }
}

/** tar, ssh or a command on the board failed. */
export class FlashRemoteError extends FlashError {
  constructor(message: string) {
    super('ERR_FLASH_REMOTE', message);
  }
}

export type FlashTarget = { kind: 'dir'; dir: string } | { kind: 'ssh'; destination: string; dir: string };

/** As scp reads its arguments: a colon before any slash makes `HOST:DIR` or `USER@HOST:DIR` remote. */
export function parseFlashTarget(to: string): FlashTarget {
  if (to === '') throw new FlashTargetError('--to is empty; give a directory or USER@HOST:DIR');
  const colon = to.indexOf(':');
  const slash = to.indexOf('/');
  if (colon > 0 && (slash === -1 || colon < slash)) {
    const destination = to.slice(0, colon);
    const dir = to.slice(colon + 1);
    if (dir === '') throw new FlashTargetError(`--to ${to}: no directory after the colon (USER@HOST:DIR)`);
    if (/\s/.test(destination) || destination.startsWith('-')) throw new FlashTargetError(`--to ${to}: "${destination}" is not USER@HOST`);
    return { kind: 'ssh', destination, dir };
  }
  return { kind: 'dir', dir: resolve(to) };
}

export interface FlashOptions {
  board: string;
  boardsFile: string;
  /** The source checkout (or installed package) that holds package.json, dist/ and deploy/. */
  packageRoot: string;
  target: FlashTarget;
  /** Run tsc first. Default true; without a tsconfig.json the existing dist/ is used. */
  build?: boolean;
  /** Over ssh, run in the tree after it arrived; '' skips. Default `sudo ./deploy/install.sh`. */
  installCommand?: string;
  /** Over ssh, run in the tree after the install; '' skips. Default `sudo systemctl restart handcheck`. */
  restartCommand?: string;
  /** ssh `-i`. */
  identity?: string;
  /** ssh `-o` options. */
  sshOptions?: string[];
  log?: (line: string) => void;
}

export interface FlashResult {
  target: FlashTarget;
  /** Paths in the tree, relative, sorted: what was laid out. */
  files: number;
  manifest: FlashManifest;
}

export interface FlashManifest {
  board: string;
  version: string;
  flashedAt: string;
  from: string;
  commit: string | undefined;
  platform: string;
}

export const defaultInstallCommand = 'sudo ./deploy/install.sh';
export const defaultRestartCommand = 'sudo systemctl restart handcheck';
const marker = 'FLASHED.json';

/** The platform native modules are built for; install.sh computes the same string on the board. */
export function nodePlatform(): string {
  return `${process.platform}-${process.arch}-abi${process.versions.modules}`;
}

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

function execute(file: string, args: string[], cwd: string): Promise<Exec> {
  return new Promise((resolveExec) => {
    execFile(file, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolveExec({ code, stdout, stderr: stderr || (err && code === -1 ? err.message : '') });
    });
  });
}

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Compiles the sources straight into the tree, so a flash never ships a stale dist/ nor rewrites the
 * one a running firmware or test uses. Without sources (an installed package) or with --no-build, the
 * existing dist/ is copied.
 */
async function build(root: string, enabled: boolean, out: string, log: (line: string) => void): Promise<void> {
  const tsconfig = join(root, 'tsconfig.json');
  if (enabled && existsSync(tsconfig)) {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    if (!existsSync(tsc)) throw new FlashBuildError(`cannot build: ${tsc} is missing; run npm ci in ${root} first`);
    log(`flash: building (tsc -p ${tsconfig})`);
    const result = await execute(process.execPath, [tsc, '-p', tsconfig, '--outDir', out], root);
    if (result.code !== 0) throw new FlashBuildError(`tsc -p ${tsconfig} failed (exit ${result.code}):\n${(result.stdout + result.stderr).trim()}`);
    return;
  }
  const built = join(root, 'dist');
  if (!existsSync(join(built, 'app', 'handcheck.js'))) {
    throw new FlashBuildError(`${join(built, 'app', 'handcheck.js')} does not exist: nothing built to flash${enabled ? '' : ' (--no-build)'}`);
  }
  await cp(built, out, { recursive: true });
}

/** Directories of the production dependency tree, relative to the package root, outermost only. */
async function productionModules(root: string): Promise<string[]> {
  const listed = await execute(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ls', '--omit=dev', '--all', '--parseable'], root);
  if (listed.code !== 0) {
    throw new FlashDependenciesError(`npm ls --omit=dev in ${root} failed (exit ${listed.code}); run npm ci there first:\n${listed.stderr.trim()}`);
  }
  const paths = listed.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => relative(root, line))
    .filter((path) => path !== '' && path.startsWith(`node_modules${sep}`))
    .sort();
  const outermost: string[] = [];
  for (const path of paths) {
    if (outermost.some((kept) => path.startsWith(`${kept}${sep}`))) continue;
    outermost.push(path);
  }
  return outermost;
}

async function gitCommit(root: string): Promise<string | undefined> {
  const result = await execute('git', ['rev-parse', 'HEAD'], root);
  return result.code === 0 ? result.stdout.trim() : undefined;
}

async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (!entry.isDirectory()) count += 1;
  return count;
}

/** Lays out the installable tree for `config` in the empty directory `out`. */
export async function layOutTree(options: {
  config: Readonly<BoardConfig>;
  boardsFile: string;
  packageRoot: string;
  out: string;
  build: boolean;
  log: (line: string) => void;
}): Promise<FlashManifest> {
  const { config, packageRoot: root, out } = options;
  await build(root, options.build, join(out, 'dist'), options.log);
  for (const module of await productionModules(root)) {
    await cp(join(root, module), join(out, module), { recursive: true, verbatimSymlinks: true });
  }
  await mkdir(join(out, 'node_modules'), { recursive: true });
  await writeFile(join(out, 'node_modules', '.handcheck-platform'), `${nodePlatform()}\n`);

  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, unknown> & { version?: string };
  // The scripts build from sources the tree does not carry; npm ci on the board must not run them.
  delete pkg.scripts;
  await writeFile(join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  await cp(join(root, 'package-lock.json'), join(out, 'package-lock.json'));
  await cp(join(root, 'boards.schema.json'), join(out, 'boards.schema.json'));

  // The entry as written in the source file, not as loaded: defaults stay implicit, as a person wrote it.
  const source = JSON.parse(await readFile(options.boardsFile, 'utf8')) as { $schema?: string; boards: Array<{ id: string }> };
  const entry = source.boards.find((b) => b.id === config.id);
  await writeFile(join(out, 'boards.json'), `${JSON.stringify({ $schema: './boards.schema.json', boards: [entry] }, null, 2)}\n`);

  for (const part of ['binding.gyp', 'README.md', 'src']) {
    if (existsSync(join(root, 'native', part))) await cp(join(root, 'native', part), join(out, 'native', part), { recursive: true });
  }
  for (const addon of ['handcheck_nfqueue.node', 'handcheck_ioctl.node', 'handcheck_splice.node']) {
    const built = join(root, 'native', 'build', 'Release', addon);
    if (existsSync(built)) await cp(built, join(out, 'native', 'build', 'Release', addon));
  }

  await cp(join(root, 'app', 'sim-page'), join(out, 'app', 'sim-page'), { recursive: true });

  await mkdir(join(out, 'deploy'), { recursive: true });
  const unit = await readFile(join(root, 'deploy', 'handcheck.service.in'), 'utf8');
  await writeFile(join(out, 'deploy', 'handcheck.service'), unit.replaceAll('@BOARD@', config.id));
  await cp(join(root, 'deploy', '99-handcheck.rules'), join(out, 'deploy', '99-handcheck.rules'));
  await cp(join(root, 'deploy', 'install.sh'), join(out, 'deploy', 'install.sh'));
  if (existsSync(join(root, 'docs', 'raspberry-pi.md'))) await cp(join(root, 'docs', 'raspberry-pi.md'), join(out, 'docs', 'raspberry-pi.md'));

  const manifest: FlashManifest = {
    board: config.id,
    version: pkg.version ?? '0.0.0',
    flashedAt: new Date().toISOString(),
    from: hostname(),
    commit: await gitCommit(root),
    platform: nodePlatform(),
  };
  await writeFile(join(out, marker), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function replaceDirectory(staged: string, dir: string): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing) {
    if (!existing.isDirectory()) throw new FlashTargetError(`${dir} exists and is not a directory`);
    const entries = await readdir(dir);
    if (entries.length > 0 && !entries.includes(marker)) {
      throw new FlashTargetError(`${dir} is not empty and holds no ${marker}: not an earlier flash, so it is not replaced`);
    }
    const old = `${dir}.handcheck-old-${process.pid}`;
    await rename(dir, old);
    await rename(staged, dir);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(staged, dir);
  }
}

function waitExit(child: ChildProcess, name: string): Promise<number> {
  return new Promise((resolveExit, reject) => {
    child.once('error', (err) => reject(new FlashRemoteError(`${name} could not start: ${err.message}`)));
    child.once('close', (code, signal) => resolveExit(code ?? (signal ? 128 : -1)));
  });
}

/** The script that runs on the board: unpack beside the old tree, swap, install, restart. */
export function remoteScript(dir: string, installCommand: string, restartCommand: string): string {
  return [
    'set -e',
    `dir=${shellQuote(dir)}`,
    'new="$dir.handcheck-new"; old="$dir.handcheck-old"',
    'rm -rf "$new" "$old"; mkdir -p "$new"',
    'tar -xzf - -C "$new"',
    'if [ -e "$dir" ]; then',
    `  if [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/${marker}" ]; then echo "$dir is not empty and holds no ${marker}: not an earlier flash, so it is not replaced" >&2; rm -rf "$new"; exit 3; fi`,
    '  mv "$dir" "$old"',
    'fi',
    'mv "$new" "$dir"; rm -rf "$old"',
    'cd "$dir"',
    ...(installCommand ? [installCommand] : []),
    ...(restartCommand ? [restartCommand] : []),
  ].join('\n');
}

async function sendOverSsh(staged: string, target: Extract<FlashTarget, { kind: 'ssh' }>, options: FlashOptions): Promise<void> {
  const sshArgs = [
    '-o',
    'BatchMode=yes',
    ...(options.identity ? ['-i', options.identity] : []),
    ...(options.sshOptions ?? []).flatMap((o) => ['-o', o]),
    target.destination,
    `sh -c ${shellQuote(remoteScript(target.dir, options.installCommand ?? defaultInstallCommand, options.restartCommand ?? defaultRestartCommand))}`,
  ];
  const tar = spawn('tar', ['-czf', '-', '-C', staged, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const ssh = spawn('ssh', sshArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
  let tarErr = '';
  let sshOut = '';
  tar.stderr.on('data', (chunk: Buffer) => (tarErr += chunk.toString()));
  ssh.stdout.on('data', (chunk: Buffer) => {
    sshOut += chunk.toString();
    options.log?.(chunk.toString().trimEnd());
  });
  ssh.stderr.on('data', (chunk: Buffer) => (sshOut += chunk.toString()));
  // ssh exiting early (refused, bad key) closes its stdin; tar then gets EPIPE, which its exit code reports.
  ssh.stdin.on('error', () => undefined);
  tar.stdout.pipe(ssh.stdin);
  const [tarCode, sshCode] = await Promise.all([waitExit(tar, 'tar'), waitExit(ssh, 'ssh')]);
  if (sshCode !== 0) {
    throw new FlashRemoteError(`ssh ${target.destination} exited with ${sshCode} while unpacking into ${target.dir} and installing:\n${sshOut.trim()}`);
  }
  if (tarCode !== 0) throw new FlashRemoteError(`tar of ${staged} exited with ${tarCode}: ${tarErr.trim()}`);
}

export async function flash(options: FlashOptions): Promise<FlashResult> {
  const log = options.log ?? (() => undefined);
  const config = selectBoard(await loadBoards(options.boardsFile), options.board);
  const target = options.target;
  const staged =
    target.kind === 'dir'
      ? join(dirname(target.dir), `.${basename(target.dir)}.handcheck-new-${process.pid}`)
      : join(await mkdtemp(join(tmpdir(), 'handcheck-flash-')), 'tree');
  await rm(staged, { recursive: true, force: true });
  await mkdir(staged, { recursive: true });
  try {
    const manifest = await layOutTree({
      config,
      boardsFile: options.boardsFile,
      packageRoot: options.packageRoot,
      out: staged,
      build: options.build ?? true,
      log,
    });
    const files = await countFiles(staged);
    if (target.kind === 'dir') {
      await replaceDirectory(staged, target.dir);
      log(`flash: board ${config.id} laid out in ${target.dir} (${files} files); on the board run: sudo ${join(target.dir, 'deploy', 'install.sh')}`);
    } else {
      log(`flash: sending board ${config.id} (${files} files) to ${target.destination}:${target.dir}`);
      await sendOverSsh(staged, target, options);
      log(`flash: ${target.destination}:${target.dir} updated`);
    }
    return { target, files, manifest };
  } finally {
    await rm(target.kind === 'dir' ? staged : dirname(staged), { recursive: true, force: true });
  }
}

export const flashSpec = (defaults: { boardsFile: string }) =>
  ({
    command: 'flash',
    summary: 'build the firmware and lay out an installable tree for a board entry',
    description: 'Build the firmware and lay out an installable tree for a board entry, in a directory or over ssh\n(then install and restart it there).',
    options: {
      board: { type: 'string', value: 'ID', help: 'the board entry (required)' },
      boards: { type: 'string', default: defaults.boardsFile, env: 'HANDCHECK_BOARDS', value: 'FILE', help: 'the boards file' },
      to: { type: 'string', value: 'DIR|USER@HOST:DIR', help: 'where to lay out the tree (required)' },
      'no-build': { type: 'boolean', default: false, help: 'use dist/ as it is' },
      'install-command': { type: 'string', value: 'CMD', help: 'over ssh (default "sudo DIR/deploy/install.sh")' },
      'restart-command': { type: 'string', value: 'CMD', help: 'over ssh (default "sudo systemctl restart handcheck")' },
      identity: { type: 'string', value: 'FILE', help: 'ssh identity file' },
      'ssh-option': { type: 'string', multiple: true, value: 'OPTION', help: 'an ssh -o option' },
    },
  }) as const satisfies CommandSpec;

export async function flashCommand(argv: string[], defaults: { boardsFile: string; packageRoot: string }): Promise<number> {
  const parsed = parseCommand(flashSpec(defaults), argv);
  if (!parsed) return 0;
  const { values } = parsed;
  if (!values.board) throw new FlashTargetError('flash needs --board ID (handcheck boards lists them)');
  if (values.to === undefined) throw new FlashTargetError('flash needs --to DIR or --to USER@HOST:DIR');
  await flash({
    board: values.board,
    boardsFile: values.boards,
    packageRoot: defaults.packageRoot,
    target: parseFlashTarget(values.to),
    build: !values['no-build'],
    ...(values['install-command'] !== undefined ? { installCommand: values['install-command'] } : {}),
    ...(values['restart-command'] !== undefined ? { restartCommand: values['restart-command'] } : {}),
    ...(values.identity ? { identity: values.identity } : {}),
    ...(values['ssh-option'] ? { sshOptions: values['ssh-option'] } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return 0;
}
