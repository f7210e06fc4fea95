/**
 * SFF-8472, the memory map of SFP/SFP+ modules, as pure decoding: the quantities and their units,
 * where A2h keeps values, thresholds and flags, the external-calibration arithmetic, checksums, and
 * the option bytes of A0h. No I/O: the driver (sfp.ts) reads, the sim model (sim/chips/sfp.ts) encodes.
 */
import type { Range } from '../../config/board-config.js';

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
/** A0h byte 1: serial ID defined by the two-wire interface (SFP_PHYS_EXT_ID_SFP, include/linux/sfp.h). */
export const sfpExtendedIdentifierSfp = 0x04;
/**
 * The kernel reads the EEPROMs in blocks of this many bytes (SFP_EEPROM_BLOCK_SIZE, drivers/net/phy/sfp.c
 * sfp_i2c_read): some modules fail longer reads.
 */
export const sfpEepromBlockSize = 16;

/** What A0h byte 65 says of the LOS pin (SFP_OPTIONS_LOS_NORMAL bit 1, SFP_OPTIONS_LOS_INVERTED bit 2). */
export type SfpLosSignal = 'normal' | 'inverted' | 'none';

/**
 * As sfp.c sfp_sm_link_check_los: exactly one of the two bits makes the pin meaningful; neither, or
 * both, means LOS is not implemented and the pin means nothing.
 */
export function decodeSfpLosSignal(byte65: number): SfpLosSignal {
  const bits = byte65 & 0x06;
  return bits === 0x02 ? 'normal' : bits === 0x04 ? 'inverted' : 'none';
}

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
export interface EnhancedOptions {
  alarmFlags: boolean;
  softTxFault: boolean;
  softRxLos: boolean;
}

export function decodeEnhancedOptions(byte: number): EnhancedOptions {
  return { alarmFlags: (byte & 0x80) !== 0, softTxFault: (byte & 0x20) !== 0, softRxLos: (byte & 0x10) !== 0 };
}

export function ascii(block: Buffer, from: number, to: number): string {
  return block.toString('latin1', from, to + 1).replace(/[\0 ]+$/, '');
}
