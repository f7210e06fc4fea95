/**
 * Errors of the Modbus TCP service. Two kinds travel differently:
 * - `ModbusFrameError` ends a connection: the byte stream is not Modbus TCP and cannot be
 *   resynchronised, so the session closes the socket and reports this error as the reason.
 * - `ModbusIllegalAddressError` / `ModbusIllegalValueError` are thrown by a `ModbusDataModel` and
 *   become exception responses 0x02 / 0x03; the connection goes on. Anything else a model throws is
 *   answered with exception 0x04 (server device failure).
 */
import { HandcheckError, type HandcheckErrorOptions } from '../../config/errors.js';

/** Base of every Modbus service error. */
export class ModbusError extends HandcheckError {}

/** Which MBAP header field made the stream unusable. */
export type MbapField = 'protocolId' | 'length';

/** An MBAP header that no Modbus TCP client sends: the protocol id is not 0, or the length is outside 2..254. */
export class ModbusFrameError extends ModbusError {
  readonly field: MbapField;
  readonly value: number;
  /** Transaction id of the offending header, to find it in a capture. */
  readonly transactionId: number;

  constructor(field: MbapField, value: number, transactionId: number, expected: string) {
    super('ERR_MODBUS_FRAME', `MBAP header of transaction ${transactionId}: ${field} is ${value}, expected ${expected}`);
    this.field = field;
    this.value = value;
    this.transactionId = transactionId;
  }
}

/** A data model was asked for addresses it does not have (answered with exception 0x02). */
export class ModbusIllegalAddressError extends ModbusError {
  readonly table: string;
  readonly address: number;
  readonly quantity: number;

  constructor(table: string, address: number, quantity: number, size: number) {
    super(
      'ERR_MODBUS_ILLEGAL_ADDRESS',
      `${table} ${address}..${address + quantity - 1} is outside the table of ${size} (addresses 0..${size - 1})`,
    );
    this.table = table;
    this.address = address;
    this.quantity = quantity;
  }
}

/** A data model refused a value written to it (answered with exception 0x03). */
export class ModbusIllegalValueError extends ModbusError {
  readonly table: string;
  readonly address: number;

  constructor(table: string, address: number, message: string, options: HandcheckErrorOptions = {}) {
    super('ERR_MODBUS_ILLEGAL_VALUE', `${table} ${address}: ${message}`, options);
    this.table = table;
    this.address = address;
  }
}

/** A session option or table size that the Modbus service cannot work with. */
export class ModbusConfigError extends ModbusError {
  /** The offending option, e.g. `unitIds` or `maxInFlight`. */
  readonly field: string;

  constructor(field: string, message: string) {
    super('ERR_MODBUS_CONFIG', `${field} ${message}`);
    this.field = field;
  }
}

/**
 * A data model failed: it threw an error that is not a Modbus one, or answered with values of the wrong
 * count or type. The client gets exception 0x04 (server device failure); this error, with the model's
 * own error as `cause`, goes to the log.
 */
export class ModbusModelError extends ModbusError {
  /** The model method that failed, e.g. `readInputRegisters`. */
  readonly method: string;

  constructor(method: string, message: string, options: HandcheckErrorOptions = {}) {
    super('ERR_MODBUS_MODEL', `data model ${method}: ${message}`, options);
    this.method = method;
  }
}
