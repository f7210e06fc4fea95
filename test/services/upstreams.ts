/**
 * Real third-party servers for the guard and proxy suites, each in the foreground of a child process
 * on a free loopback port (or the address given), its files in a temporary directory: Debian's nginx
 * (nginx-light), mosquitto, and a pymodbus TCP server (python3-pymodbus). Each helper resolves once
 * the server accepts connections.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from '../helpers/wait.js';
import { freePort } from '../helpers/ports.js';

/** Why `command` cannot run here, or undefined when it can. */
export function missing(command: string, packageName: string): string | undefined {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${command} is not installed (apt-get install ${packageName})`;
  }
}

/** Resolves once `host:port` accepts a connection. */
export async function accepting(host: string, port: number, boundMs = 20_000): Promise<void> {
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const socket: Socket = connect({ host, port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    `${host}:${port} accepting connections`,
    boundMs,
  );
}

export interface Upstream {
  host: string;
  port: number;
  child: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

/** How a helper starts a server and learns it accepts: here by default, or inside a network namespace. */
export interface Placement {
  spawner?: (command: string, args: string[]) => ChildProcess;
  /** Resolves once the server accepts; default a connect from this process. */
  ready?: (host: string, port: number) => Promise<void>;
}

async function started(child: ChildProcess, host: string, port: number, dir: string, ready: Placement['ready'] = accepting): Promise<Upstream> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${String(child.spawnfile)} exited (${code}) before accepting: ${stderr}`))));
  exited.catch(() => undefined);
  await Promise.race([ready(host, port), exited]);
  return {
    host,
    port,
    child,
    dir,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** nginx serving `/health` (200), `/broken` (503) and `/big.bin` (`bigBytes` of random data). */
export async function startNginx(options: { host?: string; port?: number; bigBytes?: number } & Placement = {}): Promise<Upstream & { big: Buffer }> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const dir = await mkdtemp(join(tmpdir(), 'hc-nginx-'));
  // Workers run as nobody, who must read the document root.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'www'), { mode: 0o755 });
  const { randomBytes } = await import('node:crypto');
  const big = randomBytes(options.bigBytes ?? 1 << 20);
  await writeFile(join(dir, 'www', 'big.bin'), big, { mode: 0o644 });
  const conf = `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${host.includes(':') ? `[${host}]` : host}:${port};
    root ${dir}/www;
    location = /health { return 200 "ok\\n"; }
    location = /broken { return 503; }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const args = ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'];
  const child = options.spawner ? options.spawner('nginx', args) : spawn('nginx', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return { ...(await started(child, host, port, dir, options.ready)), big };
}

/** mosquitto with anonymous clients on one listener. */
export async function startMosquitto(options: { host?: string; port?: number } & Placement = {}): Promise<Upstream> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const dir = await mkdtemp(join(tmpdir(), 'hc-mosquitto-'));
  await writeFile(join(dir, 'mosquitto.conf'), `listener ${port} ${host}\nallow_anonymous true\n`);
  const args = ['-c', join(dir, 'mosquitto.conf')];
  const child = options.spawner ? options.spawner('mosquitto', args) : spawn('mosquitto', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return started(child, host, port, dir, options.ready);
}

const PYMODBUS_SERVER = fileURLToPath(new URL('./pymodbus_server.py', import.meta.url));

/** Debian's pymodbus lives in the system interpreter, which a pyenv or venv python3 on PATH may hide. */
export function pymodbusPython(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(candidate, ['-c', 'import pymodbus.server'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** A pymodbus TCP server: holding registers 0-9 and input registers 0-9 readable, others exception 02. */
export async function startPymodbus(python: string, options: { host?: string; port?: number } & Placement = {}): Promise<Upstream> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const dir = await mkdtemp(join(tmpdir(), 'hc-pymodbus-'));
  const args = [PYMODBUS_SERVER, host, String(port)];
  const child = options.spawner ? options.spawner(python, args) : spawn(python, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return started(child, host, port, dir, options.ready);
}

/** A server that accepts and then never says anything: a hung upstream. */
export async function silentServer(): Promise<{ server: Server; port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    // Reads and drops, so that it sees the peer's FIN.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A server that resets every connection it accepts, at once or when the first bytes arrive. */
export async function resettingServer(when: 'accept' | 'data' = 'accept'): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    accepted++;
    socket.on('error', () => undefined);
    if (when === 'accept') {
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => socket.resetAndDestroy());
    // A peer that closes without a word (the probe's connect) is let go.
    socket.once('end', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
