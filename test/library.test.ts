/**
 * The package as a firmware author gets it: `npm pack`, unpacked into a fresh directory's
 * node_modules as an install would (its dependencies linked from this tree instead of fetched), the
 * example in examples/ type-checked by tsc against the packed declarations through the exports map
 * and then run: an HTTP service on the sim board whose connections the gate admits or resets.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { get, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSink } from './helpers/log.js';
import { until } from './helpers/wait.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');

/** The public surface: adding a name is a minor release, removing or changing one a major (CHANGELOG.md). */
const surface = [
  'DeviceStateManager',
  'ERR_APP_CHECK',
  'HalError',
  'HandcheckError',
  'createGate',
  'gatePolicy',
  'loadBoards',
  'openBoard',
  'parseBoards',
  'selectBoard',
  'shippedBoardsFile',
];

let dir: string;
let compiling: Promise<{ stdout: string }> | undefined;

/**
 * tsc on the example, once for both tests that need it: with the declarations checked (@types/node's
 * included) it takes seconds of CPU, which a loaded machine stretches well past the default timeout.
 */
function compile(): Promise<{ stdout: string }> {
  compiling ??= run(process.execPath, [tsc, '-p', dir], { cwd: dir, timeout: 170_000 }).catch((err: { stdout: string }) => err);
  return compiling;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handcheck-library-'));
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root, timeout: 120_000 });
  const tarball = join(dir, stdout.trim().split('\n').pop()!);
  await run('tar', ['-xzf', tarball, '-C', dir]);
  await mkdir(join(dir, 'node_modules'));
  await run('mv', [join(dir, 'package'), join(dir, 'node_modules/handcheck')]);
  // What `npm install` would fetch: the package's dependencies, and the example's own (pino, @types/node).
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules/handcheck/node_modules'));
  await symlink(join(root, 'node_modules/pino'), join(dir, 'node_modules/pino'));
  await symlink(join(root, 'node_modules/@types'), join(dir, 'node_modules/@types'));
  await cp(join(root, 'examples/http-service.ts'), join(dir, 'http-service.ts'));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        // Not tsc --init's default: the package's declarations are checked, not skipped, so they must
        // name no type an author's NodeNext resolution cannot find (@serialport's exports maps hide
        // theirs; the HAL declares its own).
        skipLibCheck: false,
        types: ['node'],
        outDir: 'out',
      },
      files: ['http-service.ts'],
    }),
  );
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'author-firmware', private: true, type: 'module' }));
}, 180_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('type-checks the example against its declarations through the exports map', { timeout: 180_000 }, async () => {
    expect((await compile()).stdout).toBe('');
  });

  it('exports exactly the public surface, and nothing under it', async () => {
    const script = "const m = await import('handcheck'); console.log(JSON.stringify(Object.keys(m).sort()));";
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir });
    expect(JSON.parse(stdout)).toEqual(surface);
    const deep = "await import('handcheck/dist/firmware/gate/gate.js').catch((err) => console.log(err.code));";
    expect((await run(process.execPath, ['--input-type=module', '-e', deep], { cwd: dir })).stdout.trim()).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });
});

type Outcome = { status: number; body: string } | { error: string };

function fetchOnce(url: string, method = 'GET'): Promise<Outcome> {
  return new Promise((resolve) => {
    // agent: false - a connection of its own, closed after the answer, so no verdict is reused for the next.
    const req = (method === 'GET' ? get : request)(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    if (method !== 'GET') req.end();
  });
}

describe('the example: an HTTP service guarded by the gate on the sim board', () => {
  it('answers while healthy; a sensor fault, then its own drain check, reset new connections', { timeout: 180_000 }, async () => {
    await compile();
    const { startExample } = (await import(pathToFileURL(join(dir, 'out/http-service.js')).href)) as typeof import('../examples/http-service.js');
    const sink = logSink('info');
    const example = await startExample(0, sink.logger);
    try {
      const healthy = await fetchOnce(`${example.url}/temperature`);
      expect(healthy).toMatchObject({ status: 200 });
      expect(JSON.parse((healthy as { body: string }).body)).toMatchObject({ state: 'ok', temperatureC: expect.any(Number) as number });

      const sim = example.board.sim!;
      sim.faults.inject({ target: 'board-temp', kind: 'nack' });
      let faulty: Outcome = { error: '' };
      await until(async () => 'error' in (faulty = await fetchOnce(`${example.url}/temperature`)), 'a connect reset');
      expect(faulty).toEqual({ error: 'ECONNRESET' });
      sim.faults.clearAll();
      await until(async () => 'status' in (await fetchOnce(`${example.url}/temperature`)), 'connects admitted again');

      expect(await fetchOnce(`${example.url}/drain`, 'POST')).toMatchObject({ status: 202 });
      await until(async () => 'error' in (await fetchOnce(`${example.url}/temperature`)), 'a connect reset while draining');
      const reset = sink.decisions().find((line) => line.action === 'reset' && JSON.stringify(line.failures).includes('drain'));
      expect(reset).toMatchObject({ service: 'http-api', failures: [{ component: 'drain', code: 'ERR_DRAINING', reason: 'draining for maintenance' }] });
    } finally {
      await example.close();
    }
  });
});
