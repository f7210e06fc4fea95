/**
 * The dashboard's quality target: 1000 targets probed every second cost the browser showing the
 * dashboard under 10% of one core. The monitor runs in this process (its own cost is the `monitor`
 * bench's), the targets are loopback listeners in a child process: 950 up, 50 ports nobody listens
 * on (refused), and 20 of the 950 closed and reopened every 5 s, so transitions flow as well as
 * latencies. Headless Chromium (Debian's `chromium`, as in the tests) shows the page in a
 * 1400 x 900 window; after a settling time the renderer's CPU time over a 20 s window is read from
 * /proc (utime + stime of the processes CDP SystemInfo.getProcessInfo names renderers), next to the
 * main thread's busy time (CDP Performance.getMetrics TaskDuration, wall time of its tasks, so it
 * grows on a loaded machine) and the feed's bytes per second.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { resolveConfig } from '../dist/monitor/config.js';
import { startMonitorHttp } from '../dist/monitor/http.js';
import { Monitor } from '../dist/monitor/monitor.js';

type Report = (what: string, value: string, target: string, met: boolean | undefined) => void;

const silent = pino({ level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `count` listeners on 127.0.0.1 in a child process, the first `flapping` of them closed and reopened every `flapMs`. */
async function listeners(count: number, flapping: number, flapMs: number): Promise<{ child: ChildProcess; ports: number[] }> {
  const script = `
    const net = require('node:net');
    const servers = [];
    const ports = [];
    let open = 0;
    for (let i = 0; i < ${count}; i++) {
      const server = net.createServer((s) => s.on('error', () => {}));
      servers.push(server);
      server.listen(0, '127.0.0.1', () => {
        ports[i] = server.address().port;
        if (++open === ${count}) console.log(JSON.stringify(ports));
      });
    }
    let down = false;
    setInterval(() => {
      down = !down;
      for (let i = 0; i < ${flapping}; i++) {
        if (down) servers[i].close();
        else servers[i].listen(ports[i], '127.0.0.1');
      }
    }, ${flapMs});`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`listener process exited with ${code}`)));
  });
  return { child, ports: JSON.parse(line) as number[] };
}

/** Ports that were free a moment ago: connects to them are refused. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

interface ProcessInfo {
  type: string;
  id: number;
  cpuTime: number;
}

export async function dashboardBench(report: Report): Promise<void> {
  const sites = ['osaka', 'kyoto', 'nagoya', 'sendai', 'sapporo'];
  const { child, ports } = await listeners(950, 20, 5000);
  const refused = await freePorts(50);
  const targets = [...ports, ...refused].map((port, i) => ({
    name: `pump-${String(i).padStart(4, '0')}`,
    address: `127.0.0.1:${port}`,
    labels: { site: sites[i % sites.length]!, line: `line-${Math.floor(i / 50) % 4}` },
  }));
  const monitor = Monitor.start({ config: resolveConfig({ defaults: { intervalMs: 1000, graceMs: 300 }, targets }, 'bench'), logger: silent, alertGraceMs: 0 });
  const http = await startMonitorHttp({ monitor, host: '127.0.0.1', port: 0, logger: silent });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    const browserCdp = await browser.newBrowserCDPSession();
    let feedBytes = 0;
    await cdp.send('Network.enable');
    cdp.on('Network.eventSourceMessageReceived', (e: { data: string }) => {
      feedBytes += Buffer.byteLength(e.data);
    });
    // Every target has had a first result, so the page holds 1000 rows in their steady state.
    await sleep(2500);
    await page.goto(`http://127.0.0.1:${http.address.port}/`);
    await page.waitForSelector('body[data-ready="1"]');
    await sleep(5000);
    const { processInfo } = (await browserCdp.send('SystemInfo.getProcessInfo')) as { processInfo: ProcessInfo[] };
    const renderers = processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
    // utime + stime of the renderer processes, in clock ticks (100 a second on Linux).
    const renderer = (): number =>
      renderers.reduce((sum, pid) => {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
        return sum + (Number(fields[11]) + Number(fields[12])) / 100;
      }, 0);
    const taskDuration = async (): Promise<number> => {
      const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: Array<{ name: string; value: number }> };
      return metrics.find((m) => m.name === 'TaskDuration')?.value ?? NaN;
    };
    const windowMs = 20_000;
    const cpu0 = renderer();
    const task0 = await taskDuration();
    feedBytes = 0;
    const started = performance.now();
    await sleep(windowMs);
    const seconds = (performance.now() - started) / 1000;
    const cpu = renderer() - cpu0;
    const task = (await taskDuration()) - task0;
    const rows = await page.evaluate('document.querySelectorAll("[data-target]").length');
    const share = cpu / seconds;
    report(
      'dashboard: 1000 targets at 1 s (50 refused, 20 flapping every 5 s), browser page, 1400x900',
      `renderer ${(share * 100).toFixed(1)}% of one core, main thread busy ${((task / seconds) * 100).toFixed(1)}%, feed ${((feedBytes / seconds) / 1024).toFixed(1)} KiB/s, ${String(rows)} target rows in the DOM`,
      '< 10% of one core',
      share < 0.1,
    );
  } finally {
    await browser.close();
    await http.close();
    await monitor.close();
    child.kill('SIGTERM');
  }
}
