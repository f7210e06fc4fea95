/** A Modbus RTU slave at the far end of a simulated serial line (an energy meter, say). */
import type { Timer } from '../../hal/clock.js';
import { functionCodes, hasValidCrc, rtuFrameGapMs, withCrc } from '../../hal/drivers/modbus-rtu.js';
import type { SerialPeerLink, SerialPeerModel } from '../serial.js';

export interface ModbusRtuPeerOptions {
  unitId: number;
  /** Register address to value; addresses not listed answer exception 0x02. Default: 0-15, all 0. */
  holdingRegisters?: Record<number, number> | number[];
  /** The slave's processing time after the frame gap. Default 2 ms. */
  turnaroundMs?: number;
}

/**
 * A Modbus RTU slave: reads holding registers (function 3) and writes single registers (6). Frames
 * end at 3.5 silent characters; frames with a bad CRC or for other units are ignored, broadcasts
 * (unit 0) are executed without an answer, as the specification says.
 */
export class ModbusRtuPeer implements SerialPeerModel {
  readonly unitId: number;
  readonly registers: Map<number, number>;
  /** Frames received whole and addressed to this unit. */
  requests = 0;
  /** Frames dropped for a bad CRC or a runt. */
  rejectedFrames = 0;
  private readonly turnaroundMs: number;
  private link: SerialPeerLink | undefined;
  private frame = Buffer.alloc(0);
  private gapTimer: Timer | undefined;

  constructor(options: ModbusRtuPeerOptions) {
    this.unitId = options.unitId;
    this.turnaroundMs = options.turnaroundMs ?? 2;
    const registers = options.holdingRegisters ?? new Array<number>(16).fill(0);
    this.registers = new Map(Object.entries(registers).map(([address, value]) => [Number(address), value & 0xffff]));
  }

  connect(link: SerialPeerLink): void {
    this.link = link;
    this.frame = Buffer.alloc(0);
  }

  disconnect(): void {
    this.gapTimer?.cancel();
    this.link = undefined;
    this.frame = Buffer.alloc(0);
  }

  receive(data: Buffer): void {
    const link = this.link;
    if (!link) return;
    this.frame = Buffer.concat([this.frame, data]);
    this.gapTimer?.cancel();
    this.gapTimer = link.clock.setTimeout(() => {
      const frame = this.frame;
      this.frame = Buffer.alloc(0);
      this.handle(frame, link);
    }, rtuFrameGapMs(link.baudRate, link.charMs));
  }

  private handle(frame: Buffer, link: SerialPeerLink): void {
    if (frame.length < 4 || !hasValidCrc(frame)) {
      this.rejectedFrames += 1;
      return;
    }
    const unit = frame[0]!;
    if (unit !== this.unitId && unit !== 0) return;
    this.requests += 1;
    const answer = this.execute(frame.subarray(0, frame.length - 2));
    if (unit === 0) return;
    link.clock.setTimeout(() => {
      if (this.link === link) link.send(withCrc(answer));
    }, this.turnaroundMs);
  }

  private execute(request: Buffer): Buffer {
    const fn = request[1]!;
    const exception = (code: number): Buffer => Buffer.of(this.unitId, fn | 0x80, code);
    if (fn === functionCodes.readHoldingRegisters) {
      if (request.length !== 6) return exception(0x03);
      const address = request.readUInt16BE(2);
      const quantity = request.readUInt16BE(4);
      if (quantity < 1 || quantity > 125) return exception(0x03);
      const values: number[] = [];
      for (let i = 0; i < quantity; i++) {
        const value = this.registers.get(address + i);
        if (value === undefined) return exception(0x02);
        values.push(value);
      }
      const answer = Buffer.alloc(3 + 2 * quantity);
      answer[0] = this.unitId;
      answer[1] = fn;
      answer[2] = 2 * quantity;
      values.forEach((value, i) => answer.writeUInt16BE(value, 3 + 2 * i));
      return answer;
    }
    if (fn === functionCodes.writeSingleRegister) {
      if (request.length !== 6) return exception(0x03);
      const address = request.readUInt16BE(2);
      if (!this.registers.has(address)) return exception(0x02);
      this.registers.set(address, request.readUInt16BE(4));
      return Buffer.from(request);
    }
    return exception(0x01);
  }
}
