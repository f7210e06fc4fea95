/**
 * An SFP+ optical module at register level, per SFF-8472: the serial ID EEPROM (A0h, attach at 0x50)
 * and the diagnostic monitoring interface (A2h, attach at 0x51) share one module state. By default it
 * is a typical 10GBASE-LR 1310 nm module with internally calibrated diagnostics; `calibration:
 * 'external'` stores A/D counts and the constants that convert them instead.
 *
 * Measured values, the status byte and the alarm/warning flags are computed at the moment of each A2h
 * read from the quantities and the active faults, so the flags always agree with the values.
 *
 * Faults on the component id: the value faults, plus
 * - `los`: RX_LOS set (status bit and cage pin), RX power near 0 (and so its low alarm);
 * - `tx-fault`: TX_FAULT set, TX power 0;
 * - `ddm-alarm`: `params.quantity` (default temperatureC) reads past the module's high alarm;
 * - `unplugged`: the module is pulled: MOD_DEF0 goes high and neither EEPROM answers.
 * An A2h read of the measurements (or an A0h read of byte 0, for wrong-identity) counts against `times`.
 */
import {
  type SfpQuantity,
  type SfpThresholds,
  sfpChecksum,
  sfpFlagBits,
  sfpIdentifierSfp,
  sfpQuantities,
  sfpThresholdOffset,
  sfpUnit,
  sfpValueOffset,
} from '../../hal/drivers/sff8472.js';
import { HalNackError } from '../../hal/errors.js';
import type { FaultKind } from '../faults.js';
import type { I2cDeviceModel } from '../i2c-bus.js';
import { type ChipContext, Quantity, valueFaultKinds } from './context.js';
import { ByteRegisterModel } from './registers.js';

export interface SfpModelIdentity {
  vendor: string;
  partNumber: string;
  serial: string;
}

export interface SfpModelOptions {
  calibration?: 'internal' | 'external';
  /**
   * What A0h byte 65 says of the LOS pin: `normal` (bit 1, high = loss of signal), `inverted` (bit 2,
   * low = loss), `none` (neither: the pin is not driven and the cage's pull-up holds it high). Default `normal`.
   */
  los?: 'normal' | 'inverted' | 'none';
  /** A0h byte 92 bit 6, digital diagnostics implemented. Default true. */
  ddm?: boolean;
  /** A0h byte 92 bit 2: A2h is reached only after an address change. Default false. */
  addressChange?: boolean;
  /** A0h byte 1. Default 0x04, serial ID defined by the two-wire interface. */
  extendedIdentifier?: number;
  /** Store a wrong CC_EXT (A0h byte 95). Default false. */
  badCcExt?: boolean;
}

export const sfpFaultKinds = [
  ...valueFaultKinds,
  { kind: 'los' as const, description: 'loss of signal: RX_LOS set, RX power near 0' },
  { kind: 'tx-fault' as const, description: 'laser fault: TX_FAULT set, TX power 0' },
  {
    kind: 'ddm-alarm' as const,
    description: 'params.quantity (default temperatureC) past the module high alarm threshold, alarm flags set',
    params: { quantity: { type: 'string' as const, values: sfpQuantities } },
  },
  { kind: 'unplugged' as const, description: 'module pulled from the cage: MOD_DEF0 high, EEPROMs do not answer' },
];

const defaultIdentity: SfpModelIdentity = { vendor: 'FINISAR CORP.', partNumber: 'FTLX1471D3BCL', serial: 'AQE0Q6K' };

/** Limits of a typical 10GBASE-LR module (alarms at -8.2/+0.5 dBm TX, -18/+1.5 dBm RX). */
export const lrThresholds: SfpThresholds = {
  temperatureC: { min: -5, max: 75, warnMin: 0, warnMax: 70 },
  vccV: { min: 3.0, max: 3.6, warnMin: 3.13, warnMax: 3.47 },
  txBiasMa: { min: 10, max: 85, warnMin: 15, warnMax: 80 },
  txPowerMw: { min: 0.1514, max: 1.122, warnMin: 0.1905, warnMax: 0.8913 },
  rxPowerMw: { min: 0.0158, max: 1.4125, warnMin: 0.0251, warnMax: 1.122 },
};

/**
 * Constants the externally calibrated variant stores (A2h 56-91): temperature counts read 10 C low,
 * bias counts are 4 uA, TX power counts carry a 10 uW offset, RX power counts are 0.125 uW.
 */
const externalCalibration = {
  rxPower: [0, 1.25, 0, 0, 0] as const,
  txBias: { slope: 2, offset: 0 },
  txPower: { slope: 1, offset: 100 },
  temperature: { slope: 1, offset: 2560 },
  vcc: { slope: 1, offset: 0 },
};

/** RX power with no light: one count, 0.1 uW (-40 dBm). */
const darkRxPowerMw = 0.0001;

function putAscii(memory: Buffer, from: number, to: number, text: string): void {
  memory.fill(0x20, from, to + 1);
  memory.write(text.slice(0, to - from + 1), from, 'latin1');
}

export class SfpModel {
  readonly a0: I2cDeviceModel;
  readonly a2: I2cDeviceModel;
  readonly temperatureC: Quantity;
  readonly vccV: Quantity;
  readonly txBiasMa: Quantity;
  readonly txPowerMw: Quantity;
  readonly rxPowerMw: Quantity;
  readonly thresholds: SfpThresholds = lrThresholds;
  readonly calibration: 'internal' | 'external';
  private readonly options: SfpModelOptions;
  /** Soft TX disable (A2h byte 110 bit 6), as the host last wrote it. */
  softTxDisable = false;

  constructor(
    private readonly ctx: ChipContext,
    readonly identity: SfpModelIdentity = defaultIdentity,
    options: SfpModelOptions = {},
  ) {
    this.calibration = options.calibration ?? 'internal';
    this.options = options;
    this.temperatureC = new Quantity(ctx, 'temperatureC', 34.2, 95);
    this.vccV = new Quantity(ctx, 'vccV', 3.31, 3.9);
    this.txBiasMa = new Quantity(ctx, 'txBiasMa', 38.4, 110);
    this.txPowerMw = new Quantity(ctx, 'txPowerMw', 0.5012, 2);
    this.rxPowerMw = new Quantity(ctx, 'rxPowerMw', 0.3981, 0.001);
    ctx.faults.register(ctx.id, sfpFaultKinds);
    this.a0 = new SfpIdEeprom(this, this.serialId());
    this.a2 = new SfpDiagnostics(this, this.diagnosticsBase());
  }

  get present(): boolean {
    return !this.ctx.faults.active(this.ctx.id, 'unplugged');
  }

  get rxLos(): boolean {
    return this.present && this.ctx.faults.active(this.ctx.id, 'los') !== undefined;
  }

  /** The level of the cage's LOS pin, as A0h byte 65 defines it for this module. */
  get losPin(): 0 | 1 {
    const los = this.options.los ?? 'normal';
    if (los === 'none') return 1;
    return (los === 'inverted' ? !this.rxLos : this.rxLos) ? 1 : 0;
  }

  get txFault(): boolean {
    return this.present && this.ctx.faults.active(this.ctx.id, 'tx-fault') !== undefined;
  }

  /** @internal The EEPROMs do not acknowledge a pulled module. */
  requirePresent(): void {
    if (!this.present) throw new HalNackError(`SFP module ${this.ctx.id} is not in its cage: no acknowledge`, { target: this.ctx.id, errno: 'EREMOTEIO' });
  }

  /** @internal */
  wrongIdentity(countIt: boolean): boolean {
    const { faults, id } = this.ctx;
    return (countIt ? faults.hit(id, 'wrong-identity') : faults.active(id, 'wrong-identity')) !== undefined;
  }

  /** Every quantity as the module measures it now, faults applied. */
  values(): Record<SfpQuantity, number> {
    const { faults, id } = this.ctx;
    const values: Record<SfpQuantity, number> = {
      temperatureC: this.temperatureC.get(),
      vccV: this.vccV.get(),
      txBiasMa: this.txBiasMa.get(),
      txPowerMw: this.txPowerMw.get(),
      rxPowerMw: this.rxPowerMw.get(),
    };
    const alarm = faults.active(id, 'ddm-alarm');
    if (alarm) {
      const named = alarm.params.quantity;
      const quantity = sfpQuantities.find((q) => q === named) ?? 'temperatureC';
      const { max, warnMax } = this.thresholds[quantity];
      values[quantity] = max + (max - warnMax);
    }
    if (faults.active(id, 'los')) values.rxPowerMw = darkRxPowerMw;
    if (faults.active(id, 'tx-fault') || this.softTxDisable) values.txPowerMw = 0;
    return values;
  }

  /** @internal Uses up one of `times` of every fault that bent this read of the measurements. */
  countRead(): void {
    const kinds: FaultKind[] = ['out-of-range', 'drift', 'los', 'tx-fault', 'ddm-alarm'];
    for (const kind of kinds) this.ctx.faults.hit(this.ctx.id, kind);
  }

  /** A value as the module stores it: SFF-8472 units, or A/D counts on an externally calibrated module. */
  encode(quantity: SfpQuantity, value: number): number {
    let units = value / sfpUnit[quantity];
    if (this.calibration === 'external') {
      if (quantity === 'rxPowerMw') units /= externalCalibration.rxPower[1];
      else {
        const { slope, offset } = { temperatureC: externalCalibration.temperature, vccV: externalCalibration.vcc, txBiasMa: externalCalibration.txBias, txPowerMw: externalCalibration.txPower }[quantity];
        units = (units - offset) / slope;
      }
    }
    const counts = Math.round(units);
    return quantity === 'temperatureC' ? Math.max(-0x8000, Math.min(0x7fff, counts)) & 0xffff : Math.max(0, Math.min(0xffff, counts));
  }

  /** @internal Fills A2h 96-117 from the module's state now. */
  measure(memory: Buffer): void {
    const values = this.values();
    for (const quantity of sfpQuantities) memory.writeUInt16BE(this.encode(quantity, values[quantity]), sfpValueOffset[quantity]);
    memory[110] = (this.softTxDisable ? 0xc0 : 0) | (this.txFault ? 0x04 : 0) | (this.rxLos ? 0x02 : 0);
    memory.fill(0, 112, 118);
    for (const quantity of sfpQuantities) {
      const value = values[quantity];
      const limits = this.thresholds[quantity];
      const { byte, high, low } = sfpFlagBits[quantity];
      if (value > limits.max) memory[112 + byte]! |= 1 << high;
      if (value < limits.min) memory[112 + byte]! |= 1 << low;
      if (value > limits.warnMax) memory[116 + byte]! |= 1 << high;
      if (value < limits.warnMin) memory[116 + byte]! |= 1 << low;
    }
  }

  private serialId(): Buffer {
    const m = Buffer.alloc(256);
    m[0] = sfpIdentifierSfp;
    m[1] = this.options.extendedIdentifier ?? 0x04; // serial ID module definition
    m[2] = 0x07; // LC connector
    m[3] = 0x20; // 10GBASE-LR
    m[11] = 0x06; // 64B/66B
    m[12] = 0x67; // 10.3 GBd nominal
    m[14] = 10; // km of single-mode fibre
    m[15] = 100; // 100 m units of single-mode fibre
    putAscii(m, 20, 35, this.identity.vendor);
    m.set([0x00, 0x90, 0x65], 37);
    putAscii(m, 40, 55, this.identity.partNumber);
    putAscii(m, 56, 59, 'A');
    m.writeUInt16BE(1310, 60);
    m[63] = sfpChecksum(m.subarray(0, 63));
    // TX_FAULT and TX_DISABLE implemented, and LOS as the options say.
    m[65] = 0x18 | { normal: 0x02, inverted: 0x04, none: 0 }[this.options.los ?? 'normal'];
    putAscii(m, 68, 83, this.identity.serial);
    putAscii(m, 84, 91, '220314');
    // DDM implemented, internal or external calibration, average RX power.
    m[92] = (this.options.ddm === false ? 0 : 0x40) | (this.calibration === 'external' ? 0x10 : 0x20) | 0x08 | (this.options.addressChange ? 0x04 : 0);
    m[93] = 0xf0; // alarm/warning flags, soft TX_DISABLE, soft TX_FAULT, soft RX_LOS
    m[94] = 0x08; // SFF-8472 rev 12.3
    m[95] = (sfpChecksum(m.subarray(64, 95)) + (this.options.badCcExt ? 1 : 0)) & 0xff;
    return m;
  }

  private diagnosticsBase(): Buffer {
    const m = Buffer.alloc(256);
    for (const quantity of sfpQuantities) {
      const { max, min, warnMax, warnMin } = this.thresholds[quantity];
      const at = sfpThresholdOffset[quantity];
      [max, min, warnMax, warnMin].forEach((value, i) => m.writeUInt16BE(this.encode(quantity, value), at + 2 * i));
    }
    if (this.calibration === 'external') {
      const cal = externalCalibration;
      [cal.rxPower[4], cal.rxPower[3], cal.rxPower[2], cal.rxPower[1], cal.rxPower[0]].forEach((c, i) => m.writeFloatBE(c, 56 + 4 * i));
      [cal.txBias, cal.txPower, cal.temperature, cal.vcc].forEach(({ slope, offset }, i) => {
        m.writeUInt16BE(Math.round(slope * 256), 76 + 4 * i);
        m.writeInt16BE(offset, 78 + 4 * i);
      });
    }
    m[95] = sfpChecksum(m.subarray(0, 95));
    return m;
  }
}

/** A0h: read-only. A wrong-identity fault makes it read like a blank 24C02 EEPROM. */
class SfpIdEeprom extends ByteRegisterModel {
  constructor(
    private readonly module: SfpModel,
    private readonly programmed: Buffer,
  ) {
    super(256);
    programmed.copy(this.memory);
  }

  override write(data: Buffer): void {
    this.module.requirePresent();
    super.write(data);
  }

  protected override onWrite(): boolean {
    return false;
  }

  protected override onRead(start: number, length: number): void {
    this.module.requirePresent();
    const blank = this.module.wrongIdentity(start === 0 || start + length > 256);
    if (blank) this.memory.fill(0xff);
    else this.programmed.copy(this.memory);
  }
}

/** A2h: thresholds and constants fixed, measurements live, byte 110 bit 6 and 128-247 writable. */
class SfpDiagnostics extends ByteRegisterModel {
  constructor(
    private readonly module: SfpModel,
    base: Buffer,
  ) {
    super(256);
    base.copy(this.memory);
  }

  override write(data: Buffer): void {
    this.module.requirePresent();
    super.write(data);
  }

  protected override onWrite(register: number, value: number): boolean {
    if (register === 110) {
      this.module.softTxDisable = (value & 0x40) !== 0;
      return false;
    }
    return register >= 128 && register <= 247;
  }

  protected override onRead(start: number, length: number): void {
    this.module.requirePresent();
    const end = start + length;
    const wraps = end > 256;
    if (!(wraps || (start < 118 && end > 96))) return;
    this.module.measure(this.memory);
    // One read of the measurements, however many blocks it takes, uses up one of `times`.
    if (wraps || (start <= 96 && end > 96)) this.module.countRead();
  }
}
