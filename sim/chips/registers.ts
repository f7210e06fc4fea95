/**
 * The two register layouts the simulated chips use. Models subclass one and compute register
 * contents on read (`onRead`) and react to writes (`onWrite`), so values follow the virtual clock and
 * injected faults at the moment the driver looks.
 */
import type { I2cDeviceModel } from '../i2c-bus.js';

/**
 * 8-bit registers with an auto-incrementing pointer (BME280, SFP EEPROMs, LM75-style config): a write
 * sets the pointer from its first byte and stores the rest at consecutive addresses; a read returns
 * bytes from the pointer on, wrapping at `size`.
 */
export abstract class ByteRegisterModel implements I2cDeviceModel {
  protected readonly memory: Buffer;
  protected pointer = 0;

  constructor(size = 256) {
    this.memory = Buffer.alloc(size);
  }

  /** Refresh computed registers before a read starting at `start` of `length` bytes. */
  protected onRead(_start: number, _length: number): void {}
  /** Decide what a write does; default stores the bytes. Return false to ignore (read-only). */
  protected onWrite(_register: number, _value: number): boolean {
    return true;
  }

  write(data: Buffer): void {
    if (data.length === 0) return;
    this.pointer = data[0]! % this.memory.length;
    for (let i = 1; i < data.length; i++) {
      const value = data[i]!;
      if (this.onWrite(this.pointer, value)) this.memory[this.pointer] = value;
      this.pointer = (this.pointer + 1) % this.memory.length;
    }
  }

  read(length: number): Buffer {
    this.onRead(this.pointer, length);
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      out[i] = this.memory[this.pointer]!;
      this.pointer = (this.pointer + 1) % this.memory.length;
    }
    return out;
  }
}

/**
 * A pointer register selecting 16-bit registers sent most significant byte first (TMP102, LM75,
 * INA219): a write sets the pointer and, with two more bytes, writes that register; a read returns
 * the selected register, repeated if more bytes are clocked out.
 */
export abstract class WordRegisterModel implements I2cDeviceModel {
  protected pointer = 0;

  /** The register's current 16-bit value. */
  protected abstract readRegister(register: number): number;
  protected abstract writeRegister(register: number, value: number): void;
  /** Registers that exist; a pointer outside them reads 0xffff and writes are ignored. */
  protected abstract readonly registerCount: number;

  write(data: Buffer): void {
    if (data.length === 0) return;
    this.pointer = data[0]!;
    if (data.length >= 3 && this.pointer < this.registerCount) this.writeRegister(this.pointer, data.readUInt16BE(1));
  }

  read(length: number): Buffer {
    const value = this.pointer < this.registerCount ? this.readRegister(this.pointer) & 0xffff : 0xffff;
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = i % 2 === 0 ? value >> 8 : value & 0xff;
    return out;
  }
}
