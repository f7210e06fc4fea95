/**
 * What a Modbus TCP session serves: four tables and a device identification. The appliance implements
 * `ModbusDataModel` over its board; `TableDataModel` is the plain-array one that tests use.
 *
 * Rules for implementations:
 * - Addresses are PDU addresses (0-based). The session has already checked that a request's quantity
 *   is within the spec's limits and that `address + quantity <= 65536`.
 * - A read returns exactly `quantity` values; registers are integers 0..65535.
 * - Addresses the model does not have: throw `ModbusIllegalAddressError` (exception 0x02).
 *   A written value the model refuses: throw `ModbusIllegalValueError` (exception 0x03).
 *   Any other error, or a result of the wrong shape, is answered with exception 0x04 (server device
 *   failure) and logged.
 * - A write either changes all addressed values or none.
 * - Methods may return values or promises. The session calls them one request at a time, in the order
 *   the requests arrived, so a read that follows a write on the same connection sees it.
 */
import { ModbusConfigError, ModbusIllegalAddressError, ModbusIllegalValueError } from './errors.js';

type MaybePromise<T> = T | Promise<T>;

/**
 * Device identification objects (Modbus Application Protocol V1.1b3, 6.21). The first three are the
 * mandatory basic category; the rest belong to the regular category and are served when present.
 * Values are ASCII strings.
 */
export interface DeviceIdentification {
  vendorName: string;
  productCode: string;
  majorMinorRevision: string;
  vendorUrl?: string;
  productName?: string;
  modelName?: string;
  userApplicationName?: string;
  /** Private objects of the extended category, served as objects 0x80, 0x81, ... in this order (at most 128). */
  extended?: readonly string[];
}

/** Object id of the first extended (private) object. */
export const firstExtendedObject = 0x80;

/** Object id of each identification field, in object-id order. */
export const deviceIdentificationObjects = [
  { id: 0x00, key: 'vendorName' },
  { id: 0x01, key: 'productCode' },
  { id: 0x02, key: 'majorMinorRevision' },
  { id: 0x03, key: 'vendorUrl' },
  { id: 0x04, key: 'productName' },
  { id: 0x05, key: 'modelName' },
  { id: 0x06, key: 'userApplicationName' },
] as const satisfies readonly { id: number; key: keyof DeviceIdentification }[];

export interface ModbusDataModel {
  /** Function code 1. */
  readCoils(address: number, quantity: number): MaybePromise<readonly boolean[]>;
  /** Function code 2. */
  readDiscreteInputs(address: number, quantity: number): MaybePromise<readonly boolean[]>;
  /** Function code 3. */
  readHoldingRegisters(address: number, quantity: number): MaybePromise<readonly number[]>;
  /** Function code 4. */
  readInputRegisters(address: number, quantity: number): MaybePromise<readonly number[]>;
  /** Function codes 5 (one value) and 15. */
  writeCoils(address: number, values: readonly boolean[]): MaybePromise<void>;
  /** Function codes 6 (one value) and 16. */
  writeRegisters(address: number, values: readonly number[]): MaybePromise<void>;
  /** Function code 43 / MEI type 14. */
  deviceIdentification(): MaybePromise<DeviceIdentification>;
}

/** The size of a table, or its initial contents (whose length is then its size). */
export type TableSpec<T> = number | readonly T[];

export interface TableDataModelOptions {
  coils?: TableSpec<boolean>;
  discreteInputs?: TableSpec<boolean>;
  holdingRegisters?: TableSpec<number>;
  inputRegisters?: TableSpec<number>;
  identification: DeviceIdentification;
}

/** Number of addresses a Modbus table can have (0..65535). */
const MAX_TABLE_SIZE = 0x10000;

function isRegisterValue(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

function table<T>(field: string, spec: TableSpec<T> | undefined, fill: T, valid: (value: T) => boolean): T[] {
  const size = typeof spec === 'number' ? spec : (spec?.length ?? 0);
  if (!Number.isInteger(size) || size < 0 || size > MAX_TABLE_SIZE) {
    throw new ModbusConfigError(field, `must have 0..${MAX_TABLE_SIZE} entries, got ${size}`);
  }
  if (typeof spec === 'number' || spec === undefined) return new Array<T>(size).fill(fill);
  const bad = spec.findIndex((value) => !valid(value));
  if (bad >= 0) throw new ModbusConfigError(`${field}[${bad}]`, `is not a valid value: ${String(spec[bad])}`);
  return [...spec];
}

/**
 * Four fixed-size arrays. Tests read and set their elements directly (`model.inputRegisters[3] = 250`);
 * the arrays never change length.
 */
export class TableDataModel implements ModbusDataModel {
  readonly coils: boolean[];
  readonly discreteInputs: boolean[];
  readonly holdingRegisters: number[];
  readonly inputRegisters: number[];
  identification: DeviceIdentification;

  constructor(options: TableDataModelOptions) {
    const isBit = (value: boolean): boolean => typeof value === 'boolean';
    this.coils = table('coils', options.coils, false, isBit);
    this.discreteInputs = table('discreteInputs', options.discreteInputs, false, isBit);
    this.holdingRegisters = table('holdingRegisters', options.holdingRegisters, 0, isRegisterValue);
    this.inputRegisters = table('inputRegisters', options.inputRegisters, 0, isRegisterValue);
    this.identification = options.identification;
  }

  readCoils(address: number, quantity: number): boolean[] {
    return slice('coils', this.coils, address, quantity);
  }

  readDiscreteInputs(address: number, quantity: number): boolean[] {
    return slice('discrete inputs', this.discreteInputs, address, quantity);
  }

  readHoldingRegisters(address: number, quantity: number): number[] {
    return slice('holding registers', this.holdingRegisters, address, quantity);
  }

  readInputRegisters(address: number, quantity: number): number[] {
    return slice('input registers', this.inputRegisters, address, quantity);
  }

  writeCoils(address: number, values: readonly boolean[]): void {
    checkRange('coils', this.coils, address, values.length);
    values.forEach((value, i) => {
      this.coils[address + i] = value;
    });
  }

  writeRegisters(address: number, values: readonly number[]): void {
    checkRange('holding registers', this.holdingRegisters, address, values.length);
    const bad = values.findIndex((value) => !isRegisterValue(value));
    if (bad >= 0) throw new ModbusIllegalValueError('holding registers', address + bad, `${values[bad]} is not a 16-bit value`);
    values.forEach((value, i) => {
      this.holdingRegisters[address + i] = value;
    });
  }

  deviceIdentification(): DeviceIdentification {
    return this.identification;
  }
}

function checkRange(name: string, values: readonly unknown[], address: number, quantity: number): void {
  if (!Number.isInteger(address) || address < 0 || quantity < 1 || address + quantity > values.length) {
    throw new ModbusIllegalAddressError(name, address, quantity, values.length);
  }
}

function slice<T>(name: string, values: readonly T[], address: number, quantity: number): T[] {
  checkRange(name, values, address, quantity);
  return values.slice(address, address + quantity);
}
