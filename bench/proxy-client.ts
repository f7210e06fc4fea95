/**
 * The client of the proxy bench, in a process of its own. `bulk HOST:PORT BYTES`: one connection asks
 * for BYTES and reads them to the FIN; prints the bytes, the seconds and its own CPU time in us.
 * `latency HOST:PORT COUNT`: COUNT connections one after another, each timed from connect() to the
 * first byte of the answer to `x`; prints the times in ms.
 */
import { connect } from 'node:net';

const [mode, target, amountText] = process.argv.slice(2);
const colon = target!.lastIndexOf(':');
const host = target!.slice(0, colon);
const port = Number(target!.slice(colon + 1));
const amount = Number(amountText);

function bulk(): Promise<{ bytes: number; seconds: number; cpuUs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const cpu = process.cpuUsage();
    let bytes = 0;
    const socket = connect({ host, port }, () => {
      const request = Buffer.alloc(9);
      request[0] = 0x42;
      request.writeBigUInt64BE(BigInt(amount), 1);
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('end', () => {
      socket.end();
      const used = process.cpuUsage(cpu);
      resolve({ bytes, seconds: (performance.now() - started) / 1000, cpuUs: used.user + used.system });
    });
    socket.on('error', reject);
  });
}

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host, port }, () => socket.write('x'));
    socket.setNoDelay(true);
    socket.once('data', () => {
      const ms = performance.now() - started;
      socket.end();
      socket.resume();
      socket.once('close', () => resolve(ms));
    });
    socket.on('error', reject);
  });
}

if (mode === 'bulk') {
  process.stdout.write(`${JSON.stringify(await bulk())}\n`);
} else {
  const times: number[] = [];
  for (let i = 0; i < amount; i++) times.push(await once());
  process.stdout.write(`${JSON.stringify({ times })}\n`);
}
