/**
 * National/TI LM75 digital temperature sensor. Temperature (00h), THYST (02h) and TOS (03h) are
 * 16-bit registers sent most significant byte first, holding 9-bit two's complement values at
 * 0.5 C per LSB in the top bits; configuration (01h) is a single byte whose top three bits are unused.
 *
 * The part has no identification register. Identification follows the Linux lm75 detect routine:
 * unused configuration bits read 0; pointers 04h-07h mirror the last byte read (or, on an LM75A,
 * read FFh with the ID A1h at 07h); THYST and TOS are not both 0; and the register file repeats
 * every 8 pointer values.
 *
 * A part left in shutdown (configuration D0, by an earlier program) holds its last conversion forever.
 * It is woken at the next identify, as drivers/hwmon/lm75.c does at probe (lm75_write_config always
 * clears LM75_SHUTDOWN), and refused until its first conversion can have ended: the temperature
 * conversion time is 300 ms at most (TI SNIS153B, Temperature-to-Digital Converter Characteristics).
 */
import type { Clock } from '../clock.js';
import { HalIdentityError, HalNotReadyError } from '../errors.js';
import { type I2cBus, i2cTarget } from '../i2c.js';
import { type Driver, type DriverCallOptions, type Identity } from './driver.js';

export const LM75_REG = { temperature: 0x00, config: 0x01, thyst: 0x02, tos: 0x03 } as const;
export const LM75_CONF = { SHUTDOWN: 0x01, INTERRUPT: 0x02, OS_POLARITY: 0x04, FAULT_QUEUE: 0x18, UNUSED: 0xe0 } as const;
export const LM75A_ID = 0xa1;
export const LM75_LSB_C = 0.5;
/** TI SNIS153B, Temperature-to-Digital Converter Characteristics: conversion time, typical and maximum. */
export const LM75_CONVERSION_TYPICAL_MS = 100;
export const LM75_CONVERSION_MAX_MS = 300;

/** Decodes a temperature, THYST or TOS word. */
export function lm75WordToC(word: number): number {
  return (((word << 16) >> 16) >> 7) * LM75_LSB_C;
}

export type Lm75Reading = { temperatureC: number };

function hex8(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

export class Lm75Driver implements Driver<Lm75Reading> {
  readonly target: string;

  /** When this driver took the part out of shutdown; undefined once its first conversion has ended. */
  private wokenAt: number | undefined;

  /**
   * `identity`: `detect` runs lm75_detect's checks (drivers/hwmon/lm75.c), which reject clones on
   * purpose; `declared` only proves something answers at the address, as an explicitly instantiated
   * device is trusted.
   */
  constructor(
    private readonly bus: I2cBus,
    private readonly address: number,
    private readonly clock: Clock,
    private readonly identity: 'detect' | 'declared' = 'detect',
  ) {
    this.target = i2cTarget(bus.id, address);
  }

  private byte(register: number, options: DriverCallOptions): Promise<number> {
    return this.bus.readByte(this.address, register, options);
  }

  private mismatch(expected: string, found: string): HalIdentityError {
    return new HalIdentityError(`${this.target}: expected an LM75 (${expected}), found ${found}`, { target: this.target });
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const conf = await this.byte(LM75_REG.config, options);
    if (this.identity === 'declared') {
      await this.wake(conf, options);
      return { part: 'LM75-compatible (declared)', details: { config: hex8(conf) } };
    }
    if (conf & LM75_CONF.UNUSED) throw this.mismatch('configuration bits 7-5 = 0', `configuration ${hex8(conf)}`);

    let hyst: number;
    let os: number;
    const lm75a = (await this.byte(7, options)) === LM75A_ID;
    if (lm75a) {
      for (const register of [4, 5, 6]) {
        const value = await this.byte(register, options);
        if (value !== 0xff) throw this.mismatch('LM75A unused registers reading 0xff', `${hex8(value)} at ${hex8(register)}`);
      }
      hyst = await this.byte(LM75_REG.thyst, options);
      os = await this.byte(LM75_REG.tos, options);
    } else {
      hyst = await this.byte(LM75_REG.thyst, options);
      await this.expectMirror(hyst, 'THYST', options);
      os = await this.byte(LM75_REG.tos, options);
      await this.expectMirror(os, 'TOS', options);
    }
    if (hyst === 0 && os === 0) throw this.mismatch('THYST and TOS not both 0', 'both 0');

    for (let base = 8; base <= 248; base += 40) {
      const expected: Array<[number, number, string]> = [
        [base + 1, conf, 'configuration'],
        [base + 2, hyst, 'THYST'],
        [base + 3, os, 'TOS'],
      ];
      if (lm75a) expected.push([base + 7, LM75A_ID, 'ID']);
      for (const [register, value, name] of expected) {
        const found = await this.byte(register, options);
        if (found !== value) {
          throw this.mismatch(`register ${hex8(register)} repeating ${name} ${hex8(value)}`, `${hex8(found)}`);
        }
      }
    }
    await this.wake(conf, options);
    return { part: lm75a ? 'LM75A' : 'LM75', details: { config: hex8(conf), thystC: (hyst << 24) >> 24, tosC: (os << 24) >> 24 } };
  }

  private async wake(conf: number, options: DriverCallOptions): Promise<void> {
    if ((conf & LM75_CONF.SHUTDOWN) === 0) return;
    await this.bus.writeByte(this.address, LM75_REG.config, conf & ~LM75_CONF.SHUTDOWN, options);
    this.wokenAt = this.clock.now();
  }

  /** Traditional LM75s answer pointers 04h-07h with the last byte read. */
  private async expectMirror(value: number, name: string, options: DriverCallOptions): Promise<void> {
    for (const register of [4, 5, 6, 7]) {
      const found = await this.byte(register, options);
      if (found !== value) throw this.mismatch(`${hex8(register)} mirroring ${name} ${hex8(value)}`, hex8(found));
    }
  }

  async read(options: DriverCallOptions = {}): Promise<Lm75Reading> {
    if (this.wokenAt !== undefined) {
      const since = this.clock.now() - this.wokenAt;
      if (since < LM75_CONVERSION_MAX_MS) {
        throw new HalNotReadyError(
          `${this.target}: was left in shutdown and woken ${Math.round(since)} ms ago; its temperature is the value frozen at shutdown until the first conversion ends (at most ${LM75_CONVERSION_MAX_MS} ms)`,
          { target: this.target },
        );
      }
      this.wokenAt = undefined;
    }
    const word = await this.bus.readWord(this.address, LM75_REG.temperature, 'be', options);
    return { temperatureC: lm75WordToC(word) };
  }
}
