/**
 * SFP/SFP+ optical modules per SFF-8472: the serial ID EEPROM at A0h (0x50) says what the module is,
 * the diagnostic monitoring interface at A2h (0x51) what it measures, the limits it was built for and
 * which of them are crossed. The cage's MOD_DEF0 (grounded by a module: low = present), LOS and
 * TX_FAULT pins are read when the board wires them to GPIO lines.
 *
 * Values come in SFF-8472 units: temperature 1/256 C (signed), Vcc 100 uV, TX bias 2 uA, optical
 * power 0.1 uW. Internally calibrated modules report those units; externally calibrated ones report
 * A/D counts that the slopes, offsets and the RX power polynomial at A2h 56-91 turn into them, and
 * their thresholds are A/D counts too.
 */
import type { Range } from '../board-config.js';
import { HalIdentityError, HalNotFoundError, HalUnsupportedError } from '../errors.js';
import type { GpioLine } from '../gpio.js';
import { type I2cBus, type I2cTransferOptions, i2cTarget } from '../i2c.js';
import { type DriverCallOptions, type Driver, type Identity, type SelfTestCheck, type SelfTestResult, selfTestResult } from './driver.js';

export const sfpQuantities = ['temperatureC', 'vccV', 'txBiasMa', 'txPowerMw', 'rxPowerMw'] as const;
export type SfpQuantity = (typeof sfpQuantities)[number];

/** Value of one count of each quantity in SFF-8472 units, converted to the unit in its name. */
export const sfpUnit: Readonly<Record<SfpQuantity, number>> = {
  temperatureC: 1 / 256,
  vccV: 100e-6,
  txBiasMa: 2e-3,
  txPowerMw: 1e-4,
  rxPowerMw: 1e-4,
};

/** A2h offsets of the measured values (96-105) and the first threshold of each quantity (0-39). */
export const sfpValueOffset: Readonly<Record<SfpQuantity, number>> = { temperatureC: 96, vccV: 98, txBiasMa: 100, txPowerMw: 102, rxPowerMw: 104 };
export const sfpThresholdOffset: Readonly<Record<SfpQuantity, number>> = { temperatureC: 0, vccV: 8, txBiasMa: 16, txPowerMw: 24, rxPowerMw: 32 };

/** Flag bit positions in A2h 112-113 (alarms) and 116-117 (warnings): byte index from 112/116, high bit, low bit. */
export const sfpFlagBits: Readonly<Record<SfpQuantity, { byte: 0 | 1; high: number; low: number }>> = {
  temperatureC: { byte: 0, high: 7, low: 6 },
  vccV: { byte: 0, high: 5, low: 4 },
  txBiasMa: { byte: 0, high: 3, low: 2 },
  txPowerMw: { byte: 0, high: 1, low: 0 },
  rxPowerMw: { byte: 1, high: 7, low: 6 },
};

export const sfpIdentifierSfp = 0x03;

/** Constants of an externally calibrated module (A2h 56-91). */
export interface SfpCalibration {
  /** RX power polynomial coefficients, Rx_PWR(0) first: power = sum(c[i] * counts^i). */
  rxPower: [number, number, number, number, number];
  txBias: { slope: number; offset: number };
  txPower: { slope: number; offset: number };
  temperature: { slope: number; offset: number };
  vcc: { slope: number; offset: number };
}

/** Reads the external calibration block, A2h 56-91 (36 bytes). */
export function parseSfpCalibration(block: Buffer): SfpCalibration {
  const linear = (at: number): { slope: number; offset: number } => ({ slope: block.readUInt16BE(at) / 256, offset: block.readInt16BE(at + 2) });
  const rx = (at: number): number => block.readFloatBE(at);
  return {
    rxPower: [rx(72 - 56), rx(68 - 56), rx(64 - 56), rx(60 - 56), rx(56 - 56)],
    txBias: linear(76 - 56),
    txPower: linear(80 - 56),
    temperature: linear(84 - 56),
    vcc: linear(88 - 56),
  };
}

/** The big-endian 16-bit field at `at` of `data` as a value of `quantity`, calibrated when `cal` is given. */
export function decodeSfpValue(quantity: SfpQuantity, data: Buffer, at: number, cal?: SfpCalibration): number {
  const counts = quantity === 'temperatureC' ? data.readInt16BE(at) : data.readUInt16BE(at);
  if (!cal) return counts * sfpUnit[quantity];
  if (quantity === 'rxPowerMw') {
    return cal.rxPower.reduce((sum, coefficient, power) => sum + coefficient * counts ** power, 0) * sfpUnit[quantity];
  }
  const { slope, offset } = { temperatureC: cal.temperature, vccV: cal.vcc, txBiasMa: cal.txBias, txPowerMw: cal.txPower }[quantity];
  return (slope * counts + offset) * sfpUnit[quantity];
}

export type SfpThresholds = Record<SfpQuantity, Required<Range>>;

/** A2h 0-39: high alarm, low alarm, high warning, low warning for each quantity. */
export function decodeSfpThresholds(block: Buffer, cal?: SfpCalibration): SfpThresholds {
  const out = {} as SfpThresholds;
  for (const quantity of sfpQuantities) {
    const at = sfpThresholdOffset[quantity];
    out[quantity] = {
      max: decodeSfpValue(quantity, block, at, cal),
      min: decodeSfpValue(quantity, block, at + 2, cal),
      warnMax: decodeSfpValue(quantity, block, at + 4, cal),
      warnMin: decodeSfpValue(quantity, block, at + 6, cal),
    };
  }
  return out;
}

export interface SfpFlags {
  alarms: Record<SfpQuantity, { high: boolean; low: boolean }>;
  warnings: Record<SfpQuantity, { high: boolean; low: boolean }>;
}

/** Alarm flags (A2h 112-113) and warning flags (116-117). */
export function decodeSfpFlags(alarm: Buffer, warning: Buffer): SfpFlags {
  const decode = (bytes: Buffer): SfpFlags['alarms'] => {
    const out = {} as SfpFlags['alarms'];
    for (const quantity of sfpQuantities) {
      const { byte, high, low } = sfpFlagBits[quantity];
      const value = bytes[byte] ?? 0;
      out[quantity] = { high: ((value >> high) & 1) === 1, low: ((value >> low) & 1) === 1 };
    }
    return out;
  };
  return { alarms: decode(alarm), warnings: decode(warning) };
}

/** Low byte of the sum of `data`: CC_BASE, CC_EXT and CC_DMI are all built this way. */
export function sfpChecksum(data: Buffer): number {
  let sum = 0;
  for (const byte of data) sum += byte;
  return sum & 0xff;
}

/** A0h byte 92. */
export interface SfpDiagnosticType {
  implemented: boolean;
  calibration: 'internal' | 'external';
  /** RX power is average power (else OMA). */
  rxPowerAverage: boolean;
  addressChangeRequired: boolean;
}

export function decodeSfpDiagnosticType(byte: number): SfpDiagnosticType {
  return {
    implemented: (byte & 0x40) !== 0,
    calibration: byte & 0x10 ? 'external' : 'internal',
    rxPowerAverage: (byte & 0x08) !== 0,
    addressChangeRequired: (byte & 0x04) !== 0,
  };
}

/** A0h byte 93. */
interface EnhancedOptions {
  alarmFlags: boolean;
  softTxFault: boolean;
  softRxLos: boolean;
}

function decodeEnhancedOptions(byte: number): EnhancedOptions {
  return { alarmFlags: (byte & 0x80) !== 0, softTxFault: (byte & 0x20) !== 0, softRxLos: (byte & 0x10) !== 0 };
}

export interface SfpIdentity extends Identity {
  details: {
    identifier: number;
    vendor: string;
    vendorOui: string;
    partNumber: string;
    revision: string;
    serial: string;
    /** A0h 84-91 as stored: YYMMDD and an optional lot code. */
    dateCode: string;
    wavelengthNm: number;
    ddm: boolean;
    calibration: 'internal' | 'external';
  };
}

export type SfpReading = {
  temperatureC: number;
  vccV: number;
  txBiasMa: number;
  txPowerMw: number;
  rxPowerMw: number;
  /** True whenever `read` resolves: an empty cage rejects with ERR_HAL_NOT_FOUND (MOD_DEF0) or ERR_HAL_NACK. */
  present: boolean;
  /** Cage LOS pin high, or the soft RX_LOS bit (A2h 110 bit 1) when the module implements it. */
  rxLos: boolean;
  txFault: boolean;
  /** Any alarm flag (A2h 112-113) set; false when the module implements no flags. */
  alarm: boolean;
  /** Any warning flag (A2h 116-117) set. */
  warning: boolean;
};

export interface SfpDriverOptions {
  /** Serial ID EEPROM (A0h). Default 0x50. */
  address?: number;
  /** Diagnostics (A2h). Default 0x51. */
  ddmAddress?: number;
  lines?: { modDef0?: GpioLine; los?: GpioLine; txFault?: GpioLine };
}

function ascii(block: Buffer, from: number, to: number): string {
  return block.toString('latin1', from, to + 1).replace(/[\0 ]+$/, '');
}

/** The electrical level of a line: the cage pins are defined by level, whatever the line's polarity. */
async function level(line: GpioLine): Promise<0 | 1> {
  const value = await line.read();
  return line.spec.activeLow ? (value === 1 ? 0 : 1) : value;
}

export class SfpDriver implements Driver<SfpReading> {
  readonly target: string;
  readonly ddmTarget: string;
  private readonly address: number;
  private readonly ddmAddress: number;
  private readonly lines: NonNullable<SfpDriverOptions['lines']>;

  constructor(
    private readonly bus: I2cBus,
    options: SfpDriverOptions = {},
  ) {
    this.address = options.address ?? 0x50;
    this.ddmAddress = options.ddmAddress ?? 0x51;
    this.lines = options.lines ?? {};
    this.target = i2cTarget(bus.id, this.address);
    this.ddmTarget = i2cTarget(bus.id, this.ddmAddress);
  }

  private transfer(options: DriverCallOptions): I2cTransferOptions {
    return { ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }), ...(options.signal ? { signal: options.signal } : {}) };
  }

  /** Reads `length` bytes from `start`, in block reads of at most 32 bytes. */
  private async bytes(address: number, start: number, length: number, options: DriverCallOptions): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let at = start; at < start + length; at += 32) {
      parts.push(await this.bus.readBlock(address, at, Math.min(32, start + length - at), this.transfer(options)));
    }
    return Buffer.concat(parts);
  }

  private async requirePresent(): Promise<void> {
    const line = this.lines.modDef0;
    if (line && (await level(line)) === 1) {
      throw new HalNotFoundError(`no SFP module in the cage at ${this.target}: MOD_DEF0 (${line.target}) is high`, { target: this.target });
    }
  }

  async identify(options: DriverCallOptions = {}): Promise<SfpIdentity> {
    await this.requirePresent();
    const a0 = await this.bytes(this.address, 0, 96, options);
    const identifier = a0[0]!;
    if (identifier !== sfpIdentifierSfp) {
      throw new HalIdentityError(`${this.target}: identifier byte 0x${identifier.toString(16).padStart(2, '0')} is not SFP/SFP+ (0x03)`, { target: this.target });
    }
    this.checkSum(a0, 0, 63, 'CC_BASE');
    this.checkSum(a0, 64, 95, 'CC_EXT');
    const diagnostics = decodeSfpDiagnosticType(a0[92]!);
    const details: SfpIdentity['details'] = {
      identifier,
      vendor: ascii(a0, 20, 35),
      vendorOui: [...a0.subarray(37, 40)].map((byte) => byte.toString(16).padStart(2, '0')).join(':'),
      partNumber: ascii(a0, 40, 55),
      revision: ascii(a0, 56, 59),
      serial: ascii(a0, 68, 83),
      dateCode: ascii(a0, 84, 91),
      wavelengthNm: a0.readUInt16BE(60),
      ddm: diagnostics.implemented,
      calibration: diagnostics.calibration,
    };
    return { part: `SFP ${details.vendor} ${details.partNumber}`, details };
  }

  private checkSum(block: Buffer, from: number, at: number, name: string): void {
    const computed = sfpChecksum(block.subarray(from, at));
    const stored = block[at]!;
    if (computed !== stored) {
      throw new HalIdentityError(
        `${this.target}: ${name} checksum (byte ${at}) is 0x${stored.toString(16).padStart(2, '0')}, bytes ${from}-${at - 1} sum to 0x${computed.toString(16).padStart(2, '0')}`,
        { target: this.target },
      );
    }
  }

  /** What the module says about its diagnostics (A0h 92-93), and its calibration when external. */
  private async diagnostics(options: DriverCallOptions): Promise<{ type: SfpDiagnosticType; enhanced: EnhancedOptions; cal: SfpCalibration | undefined }> {
    const info = await this.bus.readBlock(this.address, 92, 2, this.transfer(options));
    const type = decodeSfpDiagnosticType(info[0]!);
    if (!type.implemented) {
      throw new HalUnsupportedError(`${this.target}: module implements no digital diagnostics (A0h byte 92 bit 6 clear)`, { target: this.target });
    }
    const cal = type.calibration === 'external' ? parseSfpCalibration(await this.bytes(this.ddmAddress, 56, 36, options)) : undefined;
    return { type, enhanced: decodeEnhancedOptions(info[1]!), cal };
  }

  async read(options: DriverCallOptions = {}): Promise<SfpReading> {
    await this.requirePresent();
    const { enhanced, cal } = await this.diagnostics(options);
    const a2 = await this.bus.readBlock(this.ddmAddress, 96, 22, this.transfer(options));
    const value = (quantity: SfpQuantity): number => decodeSfpValue(quantity, a2, sfpValueOffset[quantity] - 96, cal);
    const status = a2[110 - 96]!;
    const losLine = this.lines.los ? (await level(this.lines.los)) === 1 : false;
    const txFaultLine = this.lines.txFault ? (await level(this.lines.txFault)) === 1 : false;
    const flags = a2.subarray(112 - 96, 118 - 96);
    return {
      temperatureC: value('temperatureC'),
      vccV: value('vccV'),
      txBiasMa: value('txBiasMa'),
      txPowerMw: value('txPowerMw'),
      rxPowerMw: value('rxPowerMw'),
      present: true,
      rxLos: losLine || (enhanced.softRxLos && (status & 0x02) !== 0),
      txFault: txFaultLine || (enhanced.softTxFault && (status & 0x04) !== 0),
      alarm: enhanced.alarmFlags && (flags[0]! | flags[1]!) !== 0,
      warning: enhanced.alarmFlags && (flags[4]! | flags[5]!) !== 0,
    };
  }

  /** The module's own alarm (`min`/`max`) and warning (`warnMin`/`warnMax`) thresholds, A2h 0-39. */
  async thresholds(options: DriverCallOptions = {}): Promise<SfpThresholds> {
    await this.requirePresent();
    const { cal } = await this.diagnostics(options);
    return decodeSfpThresholds(await this.bytes(this.ddmAddress, 0, 40, options), cal);
  }

  /** The alarm and warning flags, A2h 112-113 and 116-117; rejects with ERR_HAL_UNSUPPORTED when the module has none. */
  async flags(options: DriverCallOptions = {}): Promise<SfpFlags> {
    await this.requirePresent();
    const { enhanced } = await this.diagnostics(options);
    if (!enhanced.alarmFlags) {
      throw new HalUnsupportedError(`${this.target}: module implements no alarm/warning flags (A0h byte 93 bit 7 clear)`, { target: this.target });
    }
    const bytes = await this.bus.readBlock(this.ddmAddress, 112, 6, this.transfer(options));
    return decodeSfpFlags(bytes.subarray(0, 2), bytes.subarray(4, 6));
  }

  async selfTest(options: DriverCallOptions = {}): Promise<SelfTestResult> {
    const checks: SelfTestCheck[] = [];
    let identity: SfpIdentity;
    try {
      identity = await this.identify(options);
      checks.push({ name: 'identity', ok: true, detail: identity.part });
    } catch (err) {
      if (!(err instanceof HalIdentityError)) throw err;
      checks.push({ name: 'identity', ok: false, detail: err.message });
      return selfTestResult(checks);
    }
    if (!identity.details.ddm) return selfTestResult(checks);

    const a2 = await this.bytes(this.ddmAddress, 0, 96, options);
    const computed = sfpChecksum(a2.subarray(0, 95));
    checks.push({
      name: 'diagnostics checksum',
      ok: computed === a2[95],
      detail: `CC_DMI (A2h byte 95) 0x${a2[95]!.toString(16).padStart(2, '0')}, bytes 0-94 sum to 0x${computed.toString(16).padStart(2, '0')}`,
    });
    const reading = await this.read(options);
    const limits = decodeSfpThresholds(a2.subarray(0, 40), identity.details.calibration === 'external' ? parseSfpCalibration(a2.subarray(56, 92)) : undefined);
    const outside = sfpQuantities.filter((quantity) => reading[quantity] > limits[quantity].max || reading[quantity] < limits[quantity].min);
    checks.push({
      name: 'within module alarm thresholds',
      ok: outside.length === 0,
      detail: outside.length === 0 ? 'all values inside' : outside.map((q) => `${q} ${round(reading[q])} outside ${round(limits[q].min)}..${round(limits[q].max)}`).join('; '),
    });
    checks.push({ name: 'no TX fault', ok: !reading.txFault });
    checks.push({ name: 'no loss of signal', ok: !reading.rxLos });
    return selfTestResult(checks);
  }
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
