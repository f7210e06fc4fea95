/**
 * Opens COUNT connections to HOST:PORT, says `{"event":"held","count":N}` once all are established,
 * then sends nothing and never closes them: a client that will vanish when the test cuts it off.
 * One more connection after `more` on stdin reports how it ended: `{"event":"extra","how":"ECONNRESET"}`.
 *
 *   ip netns exec NS node --import tsx vanish-client.ts HOST PORT COUNT
 */
import { type Socket, connect } from 'node:net';
import { createInterface } from 'node:readline';

const [host = '127.0.0.1', port = '502', count = '1'] = process.argv.slice(2);
const say = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};
const held: Socket[] = [];
const open = (): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
for (let i = 0; i < Number(count); i++) {
  const socket = await open();
  socket.on('error', () => undefined);
  held.push(socket);
}
say({ event: 'held', count: held.length });
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'more') return;
  const socket = connect({ host, port: Number(port) });
  socket.on('data', () => undefined);
  socket.once('error', (err: NodeJS.ErrnoException) => say({ event: 'extra', how: err.code ?? err.message }));
  socket.once('end', () => say({ event: 'extra', how: 'end' }));
  setTimeout(() => say({ event: 'extra', how: 'open' }), 1000).unref();
});
