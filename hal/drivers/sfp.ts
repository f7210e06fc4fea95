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
import { HalIdentityError, HalNotFoundError, HalUnsupportedError } from '../errors.js';
import type { GpioLine } from '../gpio.js';
import { type I2cBus, type I2cTransferOptions, i2cTarget } from '../i2c.js';
import { type EnhancedOptions, type SfpCalibration, type SfpDiagnosticType, type SfpFlags, type SfpQuantity, type SfpThresholds, ascii, decodeEnhancedOptions, decodeSfpDiagnosticType, decodeSfpFlags, decodeSfpThresholds, decodeSfpValue, parseSfpCalibration, sfpChecksum, sfpIdentifierSfp, sfpQuantities, sfpValueOffset } from './sff8472.js';
import { type DriverCallOptions, type Driver, type Identity, type SelfTestCheck, type SelfTestResult, selfTestResult } from './driver.js';

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
