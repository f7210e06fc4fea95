/**
 * A device on a serial line (a Modbus RTU slave, a GPS receiver talking NMEA 0183) is healthy when it
 * answers in its own protocol, intact. The driver proves that with the smallest exchange each
 * protocol allows and measures how long it took.
 *
 * - modbus-rtu: function 3, read one holding register at address 0. A normal answer or an exception
 *   answer from the probed unit both prove the peer alive; the exception is reported.
 * - nmea: the peer talks unprompted, so the driver waits for the next whole sentence that began after
 *   the call and checks its checksum.
 *
 * Silence fails with ERR_HAL_TIMEOUT; bytes that are not a valid answer (wrong unit, bad CRC or
 * checksum, a frame cut short) fail with ERR_HAL_IO naming what was wrong.
 */
import type { Clock } from '../clock.js';
import { HalError, HalInvalidArgumentError, HalIoError, HalTimeoutError } from '../errors.js';
import { type SerialPort, hexDump } from '../serial.js';
import { type DriverCallOptions, type Driver, type Identity } from './driver.js';
import { crc16Modbus, exceptionName, functionCodes, hasValidCrc, readHoldingAnswerLength, readHoldingRegistersRequest } from './modbus-rtu.js';

export type SerialPeerProtocol = 'modbus-rtu' | 'nmea';

export interface SerialPeerOptions {
  protocol: SerialPeerProtocol;
  /** Modbus unit id to probe, 1-247. Default 1. */
  unitId?: number;
}

export type SerialPeerReading = {
  responding: boolean;
  latencyMs: number;
  /** Modbus exception code the peer answered with; 0 for a normal answer (and always for NMEA). */
  exceptionCode: number;
};

/** Default wait per probe: a Modbus round trip at 9600 baud takes ~20 ms; NMEA talkers send once a second. */
const defaultTimeoutMs: Record<SerialPeerProtocol, number> = { 'modbus-rtu': 100, nmea: 2000 };

interface Probe {
  latencyMs: number;
  exceptionCode: number;
  part: string;
  details: Record<string, string | number>;
}

export class SerialPeerDriver implements Driver<SerialPeerReading> {
  readonly target: string;
  private readonly protocol: SerialPeerProtocol;
  private readonly unitId: number;

  constructor(
    private readonly port: SerialPort,
    private readonly clock: Clock,
    options: SerialPeerOptions,
  ) {
    this.target = port.target;
    this.protocol = options.protocol;
    this.unitId = options.unitId ?? 1;
    if (options.protocol !== 'modbus-rtu' && options.protocol !== 'nmea') {
      throw new HalInvalidArgumentError(`serial peer protocol "${String(options.protocol)}" is not modbus-rtu or nmea`, { target: this.target });
    }
    if (!Number.isInteger(this.unitId) || this.unitId < 1 || this.unitId > 247) {
      throw new HalInvalidArgumentError(`Modbus unitId ${this.unitId} on ${this.target} is outside 1-247`, { target: this.target });
    }
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const { part, details } = await this.probe(options);
    return { part, details };
  }

  async read(options: DriverCallOptions = {}): Promise<SerialPeerReading> {
    const { latencyMs, exceptionCode } = await this.probe(options);
    return { responding: true, latencyMs, exceptionCode };
  }

  private probe(options: DriverCallOptions): Promise<Probe> {
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs[this.protocol];
    return this.protocol === 'modbus-rtu' ? this.probeModbus(timeoutMs, options.signal) : this.probeNmea(timeoutMs, options.signal);
  }

  private async probeModbus(timeoutMs: number, signal: AbortSignal | undefined): Promise<Probe> {
    const unitId = this.unitId;
    let seen: Buffer = Buffer.alloc(0);
    const isComplete = (received: Buffer): boolean => {
      seen = received;
      const length = readHoldingAnswerLength(received, unitId);
      return length !== undefined && received.length >= length;
    };
    const started = this.clock.now();
    const request = readHoldingRegistersRequest(unitId, 0, 1);
    let answer: Buffer;
    try {
      answer = await this.port.transact(request, { timeoutMs, signal, isComplete });
    } catch (err) {
      throw this.explainTimeout(err, seen, `Modbus unit ${unitId}`, timeoutMs);
    }
    const latencyMs = this.clock.now() - started;
    // No function-3 answer to this request begins with it (its byte count is never 0).
    if (request.subarray(0, answer.length).equals(answer)) {
      throw this.garbled(
        'these are the first bytes of our own request: the RS-485 transceiver echoes what we send (its receiver stays on while it drives); set rs485.echo on the serial port, or tie /RE to DE',
        answer,
      );
    }
    const fn = answer[1]!;
    if (answer[0] !== unitId) throw this.garbled(`first byte ${hexByte(answer[0]!)} is not unit id ${unitId}`, answer);
    if (fn !== functionCodes.readHoldingRegisters && fn !== (functionCodes.readHoldingRegisters | 0x80)) {
      throw this.garbled(`function code ${hexByte(fn)} is neither 0x03 nor its exception 0x83`, answer);
    }
    const expected = readHoldingAnswerLength(answer, unitId)!;
    if (answer.length > expected) throw this.garbled(`${answer.length - expected} bytes follow the ${expected}-byte answer`, answer);
    if (!hasValidCrc(answer)) {
      const sent = answer.readUInt16LE(answer.length - 2);
      const computed = crc16Modbus(answer.subarray(0, answer.length - 2));
      throw this.garbled(`CRC ${hexWord(sent)} does not match computed ${hexWord(computed)}`, answer);
    }
    if (fn & 0x80) {
      const code = answer[2]!;
      return { latencyMs, exceptionCode: code, part: `Modbus RTU unit ${unitId}`, details: { unitId, exception: exceptionName(code) } };
    }
    if (answer[2] !== 2) throw this.garbled(`byte count ${answer[2]!} for one register, expected 2`, answer);
    return { latencyMs, exceptionCode: 0, part: `Modbus RTU unit ${unitId}`, details: { unitId, register0: answer.readUInt16BE(3) } };
  }

  private async probeNmea(timeoutMs: number, signal: AbortSignal | undefined): Promise<Probe> {
    // Lines already complete when the wait began are old news: a talker that went quiet must not
    // pass on what it said before. A sentence in progress at that moment counts.
    let freshFrom: number | undefined;
    let seen: Buffer = Buffer.alloc(0);
    const isComplete = (received: Buffer): boolean => {
      seen = received;
      freshFrom ??= received.lastIndexOf(0x0a) + 1;
      return received.indexOf(0x0a, freshFrom) !== -1;
    };
    const started = this.clock.now();
    let received: Buffer;
    try {
      received = await this.port.readUntil({ timeoutMs, signal, isComplete });
    } catch (err) {
      throw this.explainTimeout(err, seen.subarray(freshFrom ?? 0), 'NMEA talker', timeoutMs);
    }
    const latencyMs = this.clock.now() - started;
    const start = freshFrom ?? 0;
    const line = received.subarray(start, received.indexOf(0x0a, start) + 1);
    const sentence = parseNmeaSentence(line, this.target);
    return {
      latencyMs,
      exceptionCode: 0,
      part: `NMEA ${sentence.talker}${sentence.type}`,
      details: { talker: sentence.talker, sentence: sentence.type },
    };
  }

  /** A timeout after some bytes arrived is a garbled answer, not silence. */
  private explainTimeout(err: unknown, seen: Buffer, who: string, timeoutMs: number): unknown {
    if (!(err instanceof HalTimeoutError)) return err;
    if (seen.length > 0) {
      return new HalIoError(`${this.target}: ${who} sent ${seen.length} bytes that never formed a whole answer: ${hexDump(seen)}`, {
        target: this.target,
        cause: err,
      });
    }
    return new HalTimeoutError(`${this.target}: no answer from ${who} within ${timeoutMs} ms`, { target: this.target, cause: err });
  }

  private garbled(what: string, answer: Buffer): HalError {
    return new HalIoError(`${this.target}: garbled Modbus answer, ${what}: ${hexDump(answer)}`, { target: this.target });
  }
}

/** XOR of the characters between `$` and `*`, as NMEA 0183 defines the sentence checksum. */
export function nmeaChecksum(body: string): number {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum ^= body.charCodeAt(i);
  return sum;
}

export interface NmeaSentence {
  /** `GP`, `GN`, ... (empty for proprietary `P` sentences). */
  talker: string;
  /** `GGA`, `RMC`, ... */
  type: string;
  fields: string[];
}

/** Checks one line `$BODY*hh\r\n` and splits it; rejects anything else with ERR_HAL_IO. */
export function parseNmeaSentence(line: Buffer, target: string): NmeaSentence {
  const fail = (what: string): HalIoError => new HalIoError(`${target}: bad NMEA sentence, ${what}: ${hexDump(line)}`, { target });
  if (line.some((byte) => byte > 0x7e || (byte < 0x20 && byte !== 0x0d && byte !== 0x0a))) throw fail('it holds bytes that are not printable ASCII');
  const text = line.toString('latin1');
  if (text[0] !== '$' && text[0] !== '!') throw fail('it does not start with $ or !');
  if (!text.endsWith('\r\n')) throw fail('it does not end with CR LF');
  const match = /^[$!]([^*$!]*)\*([0-9A-Fa-f]{2})\r\n$/.exec(text);
  if (!match) throw fail('it has no *hh checksum before CR LF');
  const body = match[1]!;
  const sent = Number.parseInt(match[2]!, 16);
  const computed = nmeaChecksum(body);
  if (sent !== computed) throw fail(`checksum ${hexByte(sent)} does not match computed ${hexByte(computed)}`);
  const fields = body.split(',');
  const address = fields.shift() ?? '';
  if (!/^[A-Z0-9]{3,}$/.test(address)) throw fail(`address field "${address}" is not a talker and sentence type`);
  const proprietary = address.startsWith('P');
  return { talker: proprietary ? '' : address.slice(0, 2), type: proprietary ? address : address.slice(2), fields };
}

function hexByte(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

function hexWord(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}
