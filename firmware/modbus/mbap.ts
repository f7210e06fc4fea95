/**
 * MBAP framing of Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b, "MBAP Header description"):
 *
 *   transaction id (2) | protocol id (2) = 0 | length (2) | unit id (1) | PDU (length - 1)
 *
 * All fields are big-endian. `length` counts the unit id and the PDU; a PDU is 1..253 bytes, so a valid
 * length is 2..254 and an ADU is at most 260 bytes.
 */
import { ModbusFrameError } from './errors.js';

export const MBAP_HEADER_LENGTH = 7;
/** The six header bytes before the unit id: what `length` does not count. */
const LENGTH_PREFIX = 6;
export const MIN_MBAP_LENGTH = 2;
export const MAX_MBAP_LENGTH = 254;
export const MAX_PDU_LENGTH = MAX_MBAP_LENGTH - 1;
export const MAX_ADU_LENGTH = LENGTH_PREFIX + MAX_MBAP_LENGTH;

export interface MbapFrame {
  transactionId: number;
  unitId: number;
  /** Function code and data: a view into the received bytes, which the parser never writes to. */
  pdu: Buffer;
}

/** Builds the ADU for a PDU, echoing the transaction and unit ids of the request it answers. */
export function encodeAdu(transactionId: number, unitId: number, pdu: Uint8Array): Buffer {
  if (pdu.length < 1 || pdu.length > MAX_PDU_LENGTH) {
    throw new RangeError(`PDU of ${pdu.length} bytes does not fit an MBAP frame (1..${MAX_PDU_LENGTH})`);
  }
  const adu = Buffer.allocUnsafe(MBAP_HEADER_LENGTH + pdu.length);
  adu.writeUInt16BE(transactionId, 0);
  adu.writeUInt16BE(0, 2);
  adu.writeUInt16BE(pdu.length + 1, 4);
  adu.writeUInt8(unitId, 6);
  adu.set(pdu, MBAP_HEADER_LENGTH);
  return adu;
}

/**
 * Cuts a TCP byte stream into MBAP frames, however the stream was segmented: a frame split over
 * several pushes is returned once complete, several frames in one push are returned one by one.
 *
 * Rules:
 * - `next()` returns the next complete frame, or null while the next frame is incomplete.
 * - The header is checked as soon as its first six bytes are there; an invalid one makes `next()` throw
 *   `ModbusFrameError`, and every later call throws the same error: past a bad header there is no
 *   telling where the next frame starts.
 * - Once every complete frame has been taken, fewer than `MAX_ADU_LENGTH` bytes stay buffered.
 */
export class MbapParser {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;
  private failure: ModbusFrameError | null = null;

  /** Bytes received and not yet returned as part of a frame. */
  get buffered(): number {
    return this.buffer.length - this.offset;
  }

  /** The error that stopped the parser, if any. */
  get error(): ModbusFrameError | null {
    return this.failure;
  }

  push(chunk: Buffer): void {
    if (this.failure || chunk.length === 0) return;
    if (this.offset === this.buffer.length) {
      this.buffer = chunk;
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk]);
    }
    this.offset = 0;
  }

  next(): MbapFrame | null {
    if (this.failure) throw this.failure;
    const available = this.buffered;
    if (available < LENGTH_PREFIX) return null;
    const start = this.offset;
    const transactionId = this.buffer.readUInt16BE(start);
    const protocolId = this.buffer.readUInt16BE(start + 2);
    const length = this.buffer.readUInt16BE(start + 4);
    if (protocolId !== 0) {
      this.failure = new ModbusFrameError('protocolId', protocolId, transactionId, '0 (Modbus)');
    } else if (length < MIN_MBAP_LENGTH || length > MAX_MBAP_LENGTH) {
      this.failure = new ModbusFrameError('length', length, transactionId, `${MIN_MBAP_LENGTH}..${MAX_MBAP_LENGTH}`);
    }
    if (this.failure) {
      this.buffer = Buffer.alloc(0);
      this.offset = 0;
      throw this.failure;
    }
    if (available < LENGTH_PREFIX + length) return null;
    const end = start + LENGTH_PREFIX + length;
    const frame: MbapFrame = {
      transactionId,
      unitId: this.buffer.readUInt8(start + LENGTH_PREFIX),
      pdu: this.buffer.subarray(start + MBAP_HEADER_LENGTH, end),
    };
    this.offset = end;
    return frame;
  }
}
