/**
 * The kernel lane's remote client: the host's side of the guest's eth0. test/kernel/lane.ts starts it
 * inside the lane's network namespace, where the tap QEMU bridges to the guest's virtio NIC has
 * 10.0.2.2, so its connects cross a real link and it sees the guest kernel's own SYN/ACK, RST or FIN.
 * QEMU's user networking (slirp) would hide that: it accepts the host's connect itself and answers a
 * guest's RST, to the SYN or after the handshake, with a FIN (libslirp 4.7, measured) - a reset and an
 * orderly close look alike.
 * Reads `HOST PORT` lines and answers each with monitor/probe.ts's outcome as a JSON line.
 */
import { createInterface } from 'node:readline';
import { probe } from '../../monitor/probe.js';

/** A connect held 4 s: a reset that comes after a fresh diagnosis (deadlines of 2.5 s) is seen. */
const graceMs = 4000;
const connectTimeoutMs = 5000;

for await (const line of createInterface({ input: process.stdin })) {
  const [host = '', port = ''] = line.trim().split(' ');
  const outcome = await probe({ host, port: Number(port), graceMs, connectTimeoutMs });
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}
