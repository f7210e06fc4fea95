/**
 * Asking the appliance itself, over Modbus TCP, what the connect alone cannot say: why it is failing
 * (the device identification's extended objects 0x80.., one per component, `ID STATE: REASON`, which
 * the firmware serves) and which boot it is in (the boot record at input registers 1000-1006).
 *
 * One connection per question, closed when answered. A faulty appliance resets every connection to a
 * port whose service depends on the failed part, so asking on the service's own port while it fails
 * gets a reset, not an answer; the question goes to a port whose service depends on no component
 * (a `dependsOn: []` Modbus service, docs/monitor.md), which only a firmware that does not answer at
 * all refuses.
 */
import { Socket } from 'node:net';
import { ApplianceQueryError } from './errors.js';

export interface ApplianceAddress {
  host: string;
  port: number;
  unitId: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ComponentReport {
  id: string;
  state: string;
  /** Empty when the appliance gave none (ok). */
  reason: string;
}

export type ResetCause = 'unknown' | 'power-on' | 'watchdog' | 'orderly';

export interface BootRecord {
  count: number;
  uptimeS: number;
  lastResetCause: ResetCause;
  /** Unclean resets within the appliance's reset-loop window. */
  uncleanResets: number;
  /** The appliance's reset-loop limit (`uncleanResets` at or above it is its own finding of a loop); undefined when it has none or does not say. */
  loopLimit: number | undefined;
}

const firstExtendedObject = 0x80;
const bootRegisters = 1000;
/** The boot record with the reset-loop limit (IR 1006); a firmware from before it serves the first six only. */
const bootRecordLength = 7;
const bootRecordLengthBefore = 6;
const illegalDataAddress = 2;
const resetCauses: readonly ResetCause[] = ['unknown', 'power-on', 'watchdog', 'orderly'];
const exceptions: Record<number, string> = { 1: 'illegal function', 2: 'illegal data address', 3: 'illegal data value', 4: 'server device failure', 11: 'gateway target failed to respond' };

/** A Modbus TCP connection for a few requests in turn. */
class Session {
  private buffer = Buffer.alloc(0);
  private transaction = 0;
  private waiting: { resolve: (pdu: Buffer) => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly address: ApplianceAddress,
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    const fail = (err: Error): void => {
      this.failure ??= err;
      this.waiting?.reject(this.failure);
      this.waiting = undefined;
    };
    socket.on('error', (err: NodeJS.ErrnoException) => fail(this.error(err.code ?? err.message)));
    socket.on('close', () => fail(this.error('the connection closed before an answer')));
  }

  private error(what: string): ApplianceQueryError {
    return new ApplianceQueryError(`${this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host}:${this.address.port}`, what);
  }

  static open(address: ApplianceAddress): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      const session = new Session(socket, address);
      socket.once('connect', () => resolve(session));
      socket.once('error', (err: NodeJS.ErrnoException) => reject(session.error(err.code ?? err.message)));
      socket.connect({ host: address.host, port: address.port, noDelay: true });
    });
  }

  private received(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length < 7) return;
    const length = this.buffer.readUInt16BE(4);
    if (this.buffer.length < 6 + length) return;
    const frame = this.buffer.subarray(0, 6 + length);
    this.buffer = this.buffer.subarray(6 + length);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (!waiting) return;
    if (frame.readUInt16BE(0) !== this.transaction || length < 2) return waiting.reject(this.error('an answer that does not match the request'));
    waiting.resolve(frame.subarray(7));
  }

  /** The exception code of a request the appliance refused, when that is how it failed. */
  static exceptionOf(err: unknown): number | undefined {
    return (err as { exception?: number }).exception;
  }

  request(pdu: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    this.transaction = (this.transaction + 1) & 0xffff;
    const header = Buffer.alloc(7);
    header.writeUInt16BE(this.transaction, 0);
    header.writeUInt16BE(0, 2);
    header.writeUInt16BE(pdu.length + 1, 4);
    header.writeUInt8(this.address.unitId, 6);
    return new Promise((resolve, reject) => {
      this.waiting = {
        resolve: (answer) => {
          if (answer[0] === (pdu[0]! | 0x80)) reject(Object.assign(this.error(`exception ${answer[1]} (${exceptions[answer[1] ?? 0] ?? 'unknown'}) to function ${pdu[0]}`), { exception: answer[1] }));
          else if (answer[0] !== pdu[0]) reject(this.error(`an answer to function ${answer[0]} for a request of function ${pdu[0]}`));
          else resolve(answer);
        },
        reject,
      };
      this.socket.write(Buffer.concat([header, pdu]));
    });
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.on('error', () => undefined);
    this.socket.end();
    this.socket.destroy();
  }
}

/** Runs `questions` on one connection, bounded by the address's timeout and signal. */
async function ask<T>(address: ApplianceAddress, questions: (session: Session) => Promise<T>): Promise<T> {
  let session: Session | undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ApplianceQueryError(`${address.host}:${address.port}`, `no answer within ${address.timeoutMs} ms`)), address.timeoutMs);
  });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    if (address.signal?.aborted) reject(address.signal.reason);
    onAbort = () => reject(address.signal?.reason);
    address.signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([
      (async () => {
        session = await Session.open(address);
        return questions(session);
      })(),
      deadline,
      aborted,
    ]);
  } finally {
    clearTimeout(timer);
    // The signal is the monitor's, shared by every question it asks for as long as it runs.
    if (onAbort) address.signal?.removeEventListener('abort', onAbort);
    session?.close();
  }
}

/** Every component's state and reason, from the extended device identification objects. */
export function componentReports(address: ApplianceAddress): Promise<ComponentReport[]> {
  return ask(address, async (session) => {
    const reports: ComponentReport[] = [];
    let objectId = firstExtendedObject;
    // Stream access (read code 3) from 0x80; an answer too long for one PDU says where to go on.
    for (let round = 0; round < 128; round++) {
      const answer = await session.request(Buffer.from([0x2b, 0x0e, 0x03, objectId]));
      const [moreFollows, nextObjectId, count] = [answer[4], answer[5], answer[6] ?? 0];
      let offset = 7;
      for (let i = 0; i < count; i++) {
        const id = answer[offset] ?? 0;
        const length = answer[offset + 1] ?? 0;
        const text = answer.subarray(offset + 2, offset + 2 + length).toString('latin1');
        offset += 2 + length;
        if (id < firstExtendedObject) continue;
        const match = /^(\S+) (\S+?)(?:: (.*))?$/s.exec(text);
        reports.push(match ? { id: match[1]!, state: match[2]!, reason: match[3] ?? '' } : { id: text, state: 'unknown', reason: '' });
      }
      if (moreFollows !== 0xff || nextObjectId === undefined) return reports;
      objectId = nextObjectId;
    }
    return reports;
  });
}

/** What the components that are not ok say, in one line: `uplink-sfp failed: receiver loss of signal (RX_LOS) | meter failed: ...`. */
export function describeReports(reports: readonly ComponentReport[]): string {
  if (reports.length === 0) return 'the appliance names no components';
  const wrong = reports.filter((r) => r.state !== 'ok');
  if (wrong.length === 0) return 'the appliance reports every component ok';
  // A component's reason has its own '; ' between checks: components are set apart by ' | '.
  return wrong.map((r) => (r.reason ? `${r.id} ${r.state}: ${r.reason}` : `${r.id} ${r.state}`)).join(' | ');
}

/** The boot record (input registers 1000-1006); undefined when the appliance cannot say which boot it is in (all zero). */
export function bootRecord(address: ApplianceAddress): Promise<BootRecord | undefined> {
  return ask(address, async (session) => {
    const read = (length: number): Promise<Buffer> => session.request(Buffer.from([0x04, bootRegisters >> 8, bootRegisters & 0xff, 0x00, length]));
    let length = bootRecordLength;
    const answer = await read(length).catch((err: unknown) => {
      if (Session.exceptionOf(err) !== illegalDataAddress) throw err;
      length = bootRecordLengthBefore;
      return read(length);
    });
    if (answer.length < 2 + 2 * length) throw new ApplianceQueryError(`${address.host}:${address.port}`, 'a short answer to the boot record read');
    const word = (i: number): number => answer.readUInt16BE(2 + 2 * i);
    const count = word(0) * 0x10000 + word(1);
    if (count === 0) return undefined;
    const limit = length > 6 ? word(6) : 0;
    return { count, uptimeS: word(2) * 0x10000 + word(3), lastResetCause: resetCauses[word(4)] ?? 'unknown', uncleanResets: word(5), loopLimit: limit === 0 ? undefined : limit };
  });
}
