/**
 * TI TMP102 digital temperature sensor (SBOS397). Four 16-bit registers sent most significant byte
 * first: temperature (00h), configuration (01h), TLOW (02h), THIGH (03h). Temperatures are
 * left-justified two's complement at 0.0625 C per LSB: 12 bits in normal mode, 13 bits in extended
 * mode (EM), and bit 0 of the temperature register tells which, so a reading needs one transfer.
 *
 * The part has no identification register; like the Linux tmp102 driver, identification checks that
 * the read-only resolution bits R1:R0 read 11 and the unused low bits read 0.
 *
 * A chip left in shutdown (SD = 1, by an earlier program) holds its last conversion forever. The
 * kernel's tmp102_probe clears SD at start and waits one conversion (CONVERSION_TIME_MS, 35 ms)
 * before the first reading; `read` does the same whenever the configuration last seen has SD set, so
 * a frozen value is never reported as a live one. Unlike the kernel it clears only SD and OS: TM,
 * EM and the conversion rate stay as the board uses them (the ALERT line may be wired).
 */
import type { Clock } from '../clock.js';
import { HalIdentityError } from '../errors.js';
import { type I2cBus, i2cTarget } from '../i2c.js';
import { type Driver, type DriverCallOptions, type Identity } from './driver.js';

export const TMP102_REG = { temperature: 0x00, config: 0x01, tlow: 0x02, thigh: 0x03 } as const;

/** Configuration bits as they sit in the big-endian 16-bit word (byte 1 in the high half). */
export const TMP102_CONF = {
  SD: 0x0100,
  TM: 0x0200,
  POL: 0x0400,
  F0: 0x0800,
  F1: 0x1000,
  R0: 0x2000,
  R1: 0x4000,
  OS: 0x8000,
  EM: 0x0010,
  AL: 0x0020,
  CR0: 0x0040,
  CR1: 0x0080,
} as const;

/** Every bit the configuration register may legitimately vary in; the rest are fixed. */
export const TMP102_CONFREG_MASK =
  TMP102_CONF.SD |
  TMP102_CONF.TM |
  TMP102_CONF.POL |
  TMP102_CONF.F0 |
  TMP102_CONF.F1 |
  TMP102_CONF.OS |
  TMP102_CONF.EM |
  TMP102_CONF.AL |
  TMP102_CONF.CR0 |
  TMP102_CONF.CR1;

export const TMP102_POWER_ON_CONFIG = 0x60a0;
/** drivers/hwmon/tmp102.c CONVERSION_TIME_MS: the first conversion after leaving shutdown. */
export const TMP102_CONVERSION_MS = 35;
export const TMP102_LSB_C = 0.0625;

/** True when `config` has the fixed bits of a TMP102 (the Linux driver's probe check). */
export function tmp102ConfigLooksRight(config: number): boolean {
  return (config & ~TMP102_CONFREG_MASK & 0xffff) === (TMP102_CONF.R0 | TMP102_CONF.R1);
}

function toInt16(word: number): number {
  return (word << 16) >> 16;
}

/** Decodes the temperature register; its bit 0 flags the 13-bit extended format. */
export function tmp102TemperatureToC(word: number): number {
  const extended = (word & 0x0001) !== 0;
  return (toInt16(word) >> (extended ? 3 : 4)) * TMP102_LSB_C;
}

/** Decodes TLOW / THIGH, whose format follows the EM bit of the configuration register. */
export function tmp102LimitToC(word: number, extended: boolean): number {
  return (toInt16(word) >> (extended ? 3 : 4)) * TMP102_LSB_C;
}

export type Tmp102Reading = { temperatureC: number };

function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}

export class Tmp102Driver implements Driver<Tmp102Reading> {
  readonly target: string;

  /** The configuration last read by `identify`; undefined until then, and once shutdown was left. */
  private lastConfig: number | undefined;
  private awake = false;

  constructor(
    private readonly bus: I2cBus,
    private readonly address: number,
    private readonly clock: Clock,
  ) {
    this.target = i2cTarget(bus.id, address);
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const config = await this.bus.readWord(this.address, TMP102_REG.config, 'be', options);
    this.lastConfig = config;
    if (!tmp102ConfigLooksRight(config)) {
      throw new HalIdentityError(
        `${this.target}: expected a TMP102 (configuration register with R1:R0 = 11 and low nibble 0, power-on ${hex16(TMP102_POWER_ON_CONFIG)}), found configuration ${hex16(config)}`,
        { target: this.target },
      );
    }
    return { part: 'TMP102', details: { config: hex16(config), extendedMode: (config & TMP102_CONF.EM) !== 0, shutdown: (config & TMP102_CONF.SD) !== 0 } };
  }

  async read(options: DriverCallOptions = {}): Promise<Tmp102Reading> {
    const seen = this.lastConfig;
    if (seen === undefined ? !this.awake : (seen & TMP102_CONF.SD) !== 0) {
      const config = seen ?? (await this.bus.readWord(this.address, TMP102_REG.config, 'be', options));
      if (config & TMP102_CONF.SD) {
        await this.bus.writeWord(this.address, TMP102_REG.config, config & ~(TMP102_CONF.SD | TMP102_CONF.OS) & 0xffff, 'be', options);
        await this.clock.sleep(TMP102_CONVERSION_MS);
      }
      this.lastConfig = undefined;
      this.awake = true;
    }
    const word = await this.bus.readWord(this.address, TMP102_REG.temperature, 'be', options);
    return { temperatureC: tmp102TemperatureToC(word) };
  }
}
