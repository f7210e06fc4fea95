/**
 * A Modbus TCP client that proves the service answers, then holds its connection and reports how it
 * ends, one JSON line per event: `{"event":"answered"}`, then `{"event":"closed","how":"ECONNRESET"}`
 * (or `"end"` for a FIN). Run inside a network namespace next to the firmware.
 *
 *   ip netns exec NS node hold-client.ts HOST PORT
 */
import { connect } from 'node:net';

const [host = '127.0.0.1', port = '502'] = process.argv.slice(2);
const say = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};
const socket = connect({ host, port: Number(port) });
// Read holding registers: transaction 1, unit 1, start 0, count 1.
socket.on('connect', () => socket.write(Buffer.from('000100000006010300000001', 'hex')));
socket.once('data', (data) => say({ event: 'answered', functionCode: data[7] }));
socket.on('error', (err: NodeJS.ErrnoException) => {
  say({ event: 'closed', how: err.code ?? err.message });
  process.exit(0);
});
socket.on('end', () => {
  say({ event: 'closed', how: 'end' });
  process.exit(0);
});
