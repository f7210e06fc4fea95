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
 *
 * A diagnosis (`diagnose`) reads the serial ID (A0h 0-95, 114 bytes on the wire) and the external
 * calibration only when a module may have been inserted since: the first time, after an edge of
 * MOD_DEF0 (SFF-8472 table 3-1 / INF-8074: the module grounds it, so every insertion and removal is
 * an edge), and when the checksum area says another module answers. Otherwise it reads CC_BASE
 * (byte 63) and CC_EXT (byte 95), 8 bytes on the wire: they sum the vendor, part number, serial number
 * and date code (SFF-8472 8.12, 8.13), so a module put in without an edge seen (a cage without
 * MOD_DEF0 wired, a line that cannot report edges) shows as a different pair - except, 1 time in 256,
 * another unit of the same part whose serial number and date code sum to the same CC_EXT, which only
 * the MOD_DEF0 edge catches. The live values, status and flags (A2h 96-117) are read every time.
 */
import { HalIdentityError, HalNotFoundError, HalUnsupportedError } from '../errors.js';
import type { GpioLine, GpioValue } from '../gpio.js';
import { type I2cBus, type I2cTransferOptions, i2cTarget } from '../i2c.js';
import {
  type EnhancedOptions,
  type SfpCalibration,
  type SfpFlags,
  type SfpLosSignal,
  type SfpQuantity,
  type SfpThresholds,
  ascii,
  decodeEnhancedOptions,
  decodeSfpDiagnosticType,
  decodeSfpFlags,
  decodeSfpLosSignal,
  decodeSfpThresholds,
  decodeSfpValue,
  parseSfpCalibration,
  sfpChecksum,
  sfpEepromBlockSize,
  sfpExtendedIdentifierSfp,
  sfpIdentifierSfp,
  sfpValueOffset,
} from './sff8472.js';
import { type DriverCallOptions, type Driver, type Identity } from './driver.js';

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
    /** A2h is read: A0h byte 92 says DDM is implemented and needs no address change. */
    ddm: boolean;
    calibration: 'internal' | 'external';
    los: SfpLosSignal;
  };
}

export type SfpReading = {
  /** The measurements are absent when the module has no usable DDM (A0h byte 92). */
  temperatureC?: number;
  vccV?: number;
  txBiasMa?: number;
  txPowerMw?: number;
  rxPowerMw?: number;
  /** True whenever `read` resolves: an empty cage rejects with ERR_HAL_NOT_FOUND (MOD_DEF0) or ERR_HAL_NACK. */
  present: boolean;
  /**
   * The cage's LOS pin at the level A0h byte 65 defines (high when normal, low when inverted; ignored
   * when LOS is not implemented), or the soft RX_LOS bit (A2h 110 bit 1) when the module implements it.
   */
  rxLos: boolean;
  txFault: boolean;
  /** Any alarm flag (A2h 112-113) set; false when the module implements no flags. */
  alarm: boolean;
  /** Any warning flag (A2h 116-117) set. */
  warning: boolean;
};

/** The cage's pins a board may wire to GPIO lines. */
export type SfpPin = 'modDef0' | 'los' | 'txFault';

export interface SfpDriverOptions {
  /** Serial ID EEPROM (A0h). Default 0x50. */
  address?: number;
  /** Diagnostics (A2h). Default 0x51. */
  ddmAddress?: number;
  lines?: { [pin in SfpPin]?: GpioLine };
}

/** What the module says about its diagnostics and LOS (A0h 64-95), and its calibration when A2h is to be read. */
interface Diagnostics {
  usable: boolean;
  enhanced: EnhancedOptions;
  los: SfpLosSignal;
  cal: SfpCalibration | undefined;
}

/** What a full identity read proved, kept until another module may be in the cage. */
interface Proven {
  identity: SfpIdentity;
  diagnostics: Diagnostics;
  /** CC_BASE (A0h 63) and CC_EXT (A0h 95) as read then. */
  checksums: [number, number];
}

/** The electrical level of a line's logical `value`: the cage pins are defined by level, whatever the line's polarity. */
function levelOf(line: GpioLine, value: GpioValue): 0 | 1 {
  return line.spec.activeLow ? (value === 1 ? 0 : 1) : value;
}

async function level(line: GpioLine): Promise<0 | 1> {
  return levelOf(line, await line.read());
}

export class SfpDriver implements Driver<SfpReading> {
  readonly target: string;
  readonly ddmTarget: string;
  private readonly address: number;
  private readonly ddmAddress: number;
  private readonly lines: NonNullable<SfpDriverOptions['lines']>;
  private proven: Proven | undefined;

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

  /** Built by assignment: spreading conditional objects here, once per transfer, took ~6% of the scenario bench's CPU. */
  private transfer(options: DriverCallOptions): I2cTransferOptions {
    const transfer: I2cTransferOptions = {};
    if (options.timeoutMs !== undefined) transfer.timeoutMs = options.timeoutMs;
    if (options.signal) transfer.signal = options.signal;
    return transfer;
  }

  /** Reads `length` bytes from `start` in the kernel's 16-byte blocks. */
  private async bytes(address: number, start: number, length: number, options: DriverCallOptions): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let at = start; at < start + length; at += sfpEepromBlockSize) {
      parts.push(await this.bus.readBlock(address, at, Math.min(sfpEepromBlockSize, start + length - at), this.transfer(options)));
    }
    return Buffer.concat(parts);
  }

  private async requirePresent(): Promise<void> {
    const line = this.lines.modDef0;
    if (line && (await level(line)) === 1) {
      throw new HalNotFoundError(`no SFP module in the cage at ${this.target}: MOD_DEF0 (${line.target}) is high`, { target: this.target });
    }
  }

  /**
   * An edge of a cage pin to `value`. The driver watches no line itself: whoever watches one (a line
   * has one watcher) tells it here. A MOD_DEF0 edge means a module may have been put
   * in or taken out: the next diagnosis reads the identity in full. A driver told of no edges (a line
   * that cannot report them) leaves the checksum area to tell a module swap.
   *
   * Returns what the edge asserts on its own, without a bus transfer: the module gone (MOD_DEF0 high),
   * TX_FAULT high, or LOS at the level the module's A0h byte 65 gives loss of signal - known once a
   * diagnosis proved the module, none for a module without LOS. Undefined when it asserts nothing.
   */
  edge(pin: SfpPin, value: GpioValue): string | undefined {
    const line = this.lines[pin];
    if (!line) return undefined;
    const high = levelOf(line, value) === 1;
    switch (pin) {
      case 'modDef0':
        this.proven = undefined;
        return high ? 'module not present' : undefined;
      case 'txFault':
        return high ? 'transmitter fault (TX_FAULT)' : undefined;
      case 'los': {
        const los = this.proven?.diagnostics.los;
        return (los === 'normal' && high) || (los === 'inverted' && !high) ? 'receiver loss of signal (RX_LOS)' : undefined;
      }
    }
  }

  async identify(options: DriverCallOptions = {}): Promise<SfpIdentity> {
    await this.requirePresent();
    return (await this.readIdentity(options)).identity;
  }

  async diagnose(options: DriverCallOptions = {}): Promise<{ identity: SfpIdentity; reading: SfpReading }> {
    await this.requirePresent();
    let proven = this.proven;
    if (proven) {
      const transfer = this.transfer(options);
      const checksums = [await this.bus.readByte(this.address, 63, transfer), await this.bus.readByte(this.address, 95, transfer)];
      if (checksums[0] !== proven.checksums[0] || checksums[1] !== proven.checksums[1]) proven = undefined;
    }
    if (!proven) {
      // Cleared first, so that a MOD_DEF0 edge during the read makes the next diagnosis read again.
      this.proven = undefined;
      const { identity, a0, ext } = await this.readIdentity(options);
      proven = { identity, diagnostics: await this.diagnosticsOf(ext, options), checksums: [a0[63]!, a0[95]!] };
      this.proven = proven;
    }
    return { identity: proven.identity, reading: await this.readWith(proven.diagnostics, options) };
  }

  /** A0h 0-95 and the identity it proves; `ext` is 64-95 as the kernel uses it (zeroed when CC_EXT is bad). */
  private async readIdentity(options: DriverCallOptions): Promise<{ identity: SfpIdentity; a0: Buffer; ext: Buffer }> {
    const a0 = await this.bytes(this.address, 0, 96, options);
    const identifier = a0[0]!;
    if (identifier !== sfpIdentifierSfp) {
      throw new HalIdentityError(`${this.target}: identifier byte 0x${hex(identifier)} is not SFP/SFP+ (0x03)`, { target: this.target });
    }
    // sfp.c sfp_module_supported: an SFP is 0x03 with extended identifier 0x04.
    if (a0[1] !== sfpExtendedIdentifierSfp) {
      throw new HalIdentityError(`${this.target}: extended identifier byte 1 is 0x${hex(a0[1]!)}, not 0x04 (serial ID defined by the two-wire interface)`, { target: this.target });
    }
    const base = checksumProblem(a0, 0, 63, 'CC_BASE');
    if (base) throw new HalIdentityError(`${this.target}: ${base}`, { target: this.target });
    const { ext, warnings } = extended(a0.subarray(64, 96));
    const diagnostics = decodeSfpDiagnosticType(ext[92 - 64]!);
    const details: SfpIdentity['details'] = {
      identifier,
      vendor: ascii(a0, 20, 35),
      vendorOui: [...a0.subarray(37, 40)].map((byte) => hex(byte)).join(':'),
      partNumber: ascii(a0, 40, 55),
      revision: ascii(a0, 56, 59),
      serial: ascii(ext, 68 - 64, 83 - 64),
      dateCode: ascii(ext, 84 - 64, 91 - 64),
      wavelengthNm: a0.readUInt16BE(60),
      ddm: diagnostics.implemented && !diagnostics.addressChangeRequired,
      calibration: diagnostics.calibration,
      los: decodeSfpLosSignal(ext[65 - 64]!),
    };
    return { identity: { part: `SFP ${details.vendor} ${details.partNumber}`, details, ...(warnings.length > 0 ? { warnings } : {}) }, a0, ext };
  }

  private async diagnostics(options: DriverCallOptions): Promise<Diagnostics> {
    return this.diagnosticsOf(extended(await this.bytes(this.address, 64, 32, options)).ext, options);
  }

  private async diagnosticsOf(ext: Buffer, options: DriverCallOptions): Promise<Diagnostics> {
    const type = decodeSfpDiagnosticType(ext[92 - 64]!);
    // sfp.c sfp_hwmon_insert: no DDM, or an address change required, and the kernel leaves A2h alone.
    const usable = type.implemented && !type.addressChangeRequired;
    const cal = usable && type.calibration === 'external' ? parseSfpCalibration(await this.bytes(this.ddmAddress, 56, 36, options)) : undefined;
    return { usable, enhanced: decodeEnhancedOptions(usable ? ext[93 - 64]! : 0), los: decodeSfpLosSignal(ext[65 - 64]!), cal };
  }

  async read(options: DriverCallOptions = {}): Promise<SfpReading> {
    await this.requirePresent();
    return this.readWith(await this.diagnostics(options), options);
  }

  private async readWith({ usable, enhanced, los, cal }: Diagnostics, options: DriverCallOptions): Promise<SfpReading> {
    const pin = this.lines.los && los !== 'none' ? await level(this.lines.los) : undefined;
    const losLine = pin === undefined ? false : los === 'inverted' ? pin === 0 : pin === 1;
    const txFaultLine = this.lines.txFault ? (await level(this.lines.txFault)) === 1 : false;
    if (!usable) return { present: true, rxLos: losLine, txFault: txFaultLine, alarm: false, warning: false };
    const a2 = await this.bytes(this.ddmAddress, 96, 22, options);
    const value = (quantity: SfpQuantity): number => decodeSfpValue(quantity, a2, sfpValueOffset[quantity] - 96, cal);
    const status = a2[110 - 96]!;
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

  /**
   * The module's own alarm (`min`/`max`) and warning (`warnMin`/`warnMax`) thresholds, A2h 0-39;
   * undefined when the module has no usable DDM.
   */
  async thresholds(options: DriverCallOptions = {}): Promise<SfpThresholds | undefined> {
    await this.requirePresent();
    const { usable, cal } = this.proven?.diagnostics ?? (await this.diagnostics(options));
    return usable ? decodeSfpThresholds(await this.bytes(this.ddmAddress, 0, 40, options), cal) : undefined;
  }

  /** The alarm and warning flags, A2h 112-113 and 116-117; rejects with ERR_HAL_UNSUPPORTED when the module has none. */
  async flags(options: DriverCallOptions = {}): Promise<SfpFlags> {
    await this.requirePresent();
    const { usable, enhanced } = await this.diagnostics(options);
    if (!usable) throw new HalUnsupportedError(`${this.target}: module has no digital diagnostics the host can read (A0h byte 92)`, { target: this.target });
    if (!enhanced.alarmFlags) {
      throw new HalUnsupportedError(`${this.target}: module implements no alarm/warning flags (A0h byte 93 bit 7 clear)`, { target: this.target });
    }
    const bytes = await this.bus.readBlock(this.ddmAddress, 112, 6, this.transfer(options));
    return decodeSfpFlags(bytes.subarray(0, 2), bytes.subarray(4, 6));
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/** Why the checksum byte `at` of `block` does not match bytes `from`..`at - 1`, or undefined when it does. */
function checksumProblem(block: Buffer, from: number, at: number, name: string, offset = 0): string | undefined {
  const computed = sfpChecksum(block.subarray(from, at));
  const stored = block[at]!;
  return computed === stored ? undefined : `${name} checksum (byte ${at + offset}) is 0x${hex(stored)}, bytes ${from + offset}-${at + offset - 1} sum to 0x${hex(computed)}`;
}

/**
 * A0h 64-95 as the kernel uses it: with a bad CC_EXT, sfp.c sfp_sm_mod_probe warns ("EEPROM
 * extended structure checksum failure") and zeroes the extended part - the module stays, without
 * LOS, DDM or the other options that part declares.
 */
function extended(ext: Buffer): { ext: Buffer; warnings: string[] } {
  const problem = checksumProblem(ext, 0, 31, 'CC_EXT', 64);
  return problem ? { ext: Buffer.alloc(32), warnings: [`${problem}: options, diagnostics and serial number ignored`] } : { ext, warnings: [] };
}
