/**
 * The client of the proxy bench, in a process of its own. `bulk PORT BYTES`: one connection asks for
 * BYTES and reads them to the FIN; prints the bytes and seconds. `latency PORT COUNT`: COUNT
 * connections one after another, each timed from connect() to the first byte of the answer to `x`;
 * prints the times in ms.
 */
import { connect } from 'node:net';

const [mode, portText, amountText] = process.argv.slice(2);
const port = Number(portText);
const amount = Number(amountText);

function bulk(): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let bytes = 0;
    const socket = connect({ host: '127.0.0.1', port }, () => {
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
      resolve({ bytes, seconds: (performance.now() - started) / 1000 });
    });
    socket.on('error', reject);
  });
}

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write('x'));
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
