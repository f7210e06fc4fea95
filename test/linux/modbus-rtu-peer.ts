/**
 * Plays a Modbus RTU slave (unit 1, holding register 0 = 0x1234) on a serial port through the real
 * serialport binding, for tests on a socat pty pair. Commands on stdin: `silent` stops answering,
 * `answer` resumes. Prints `ready` once the port is open, and `request` for each request it read.
 *
 *   node --import tsx modbus-rtu-peer.ts /dev/pts/N
 */
import { createInterface } from 'node:readline';
import { systemClock } from '../../hal/clock.js';
import { crc16Modbus } from '../../hal/drivers/modbus-rtu.js';
import { LinuxSerialController } from '../../hal/linux/serial.js';

const path = process.argv[2] ?? '';
const controller = new LinuxSerialController({ clock: systemClock });
const port = await controller.open({ path, baudRate: 19200, parity: 'even' });
let silent = false;
createInterface({ input: process.stdin }).on('line', (line) => {
  silent = line.trim() === 'silent';
  process.stdout.write(`${silent ? 'silent' : 'answering'}\n`);
});

function frame(body: number[]): Buffer {
  const out = Buffer.alloc(body.length + 2);
  Buffer.from(body).copy(out);
  out.writeUInt16LE(crc16Modbus(out.subarray(0, body.length)), body.length);
  return out;
}

process.stdout.write('ready\n');
for (;;) {
  let request: Buffer;
  try {
    request = await port.readUntil({ timeoutMs: 60_000, isComplete: (received) => received.length >= 8 });
  } catch {
    break;
  }
  process.stdout.write('request\n');
  if (silent || request[0] !== 1 || request[1] !== 3) continue;
  await port.write(frame([1, 3, 2, 0x12, 0x34]));
}
await controller.close();
