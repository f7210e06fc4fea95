/**
 * The upstream of the proxy bench, in a process of its own: on each connection, `B` and an 8-byte
 * length ask for that many bytes (sent honouring backpressure, then FIN); `x` is answered with `y` at
 * once. A connection that sends nothing (the proxy's connect probe) is let go when it closes. Listens
 * on the address given (127.0.0.1 by default) and prints its port.
 */
import { type AddressInfo, createServer } from 'node:net';

const block = Buffer.alloc(256 << 10, 0x5a);
const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    if (head[0] === 0x78) {
      socket.write('y');
      head = head.subarray(1);
      return;
    }
    if (head[0] !== 0x42 || head.length < 9) return;
    socket.off('data', onData);
    let left = Number(head.readBigUInt64BE(1));
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!socket.write(n === block.length ? block : block.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    pump();
  };
  socket.on('data', onData);
  socket.on('end', () => socket.end());
});
server.listen(0, process.argv[2] ?? '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
