/**
 * Answers one request PDU from a data model: decode, check access, call the model, encode. Never throws:
 * every outcome is a response PDU, with the model failure (if any) alongside for the log.
 */
import type { ModbusDataModel } from './data-model.js';
import { identificationObjects, readDeviceIdentification } from './device-id.js';
import { ModbusIllegalAddressError, ModbusIllegalValueError, ModbusModelError } from './errors.js';
import {
  ExceptionCode,
  decodeRequest,
  exceptionPdu,
  readBitsResponse,
  readRegistersResponse,
  writeResponse,
  type ModbusRequest,
} from './pdu.js';

export interface PduAnswer {
  pdu: Buffer;
  /** Set when the answer is an exception response. */
  exception?: ExceptionCode;
  /** Set when the exception is 0x04 because the model failed. */
  failure?: ModbusModelError;
}

export interface AnswerOptions {
  model: ModbusDataModel;
  /** Whether this client may use a function code; absent: every one. */
  permits?: (functionCode: number) => boolean;
}

function exception(functionCode: number, code: ExceptionCode, failure?: ModbusModelError): PduAnswer {
  return { pdu: exceptionPdu(functionCode, code), exception: code, ...(failure ? { failure } : {}) };
}

export async function answerPdu(request: Buffer, options: AnswerOptions): Promise<PduAnswer> {
  const functionCode = request[0] ?? 0;
  // Access control answers 0x01 (illegal function), the usual answer of devices with write protection
  // and the MODBUS/TCP Security spec's answer to a role without the right: the application spec defines
  // 0x01 as "not an allowable action for the server", while 0x04 says the device failed, and a SCADA or
  // our own monitor would count a healthy, locked-down appliance as broken.
  if (options.permits && !options.permits(functionCode)) return exception(functionCode, ExceptionCode.IllegalFunction);
  const decoded = decodeRequest(request);
  if (decoded.kind === 'rejected') return exception(decoded.functionCode, decoded.exception);
  try {
    return await execute(decoded, options.model);
  } catch (err) {
    if (err instanceof ModbusIllegalAddressError) return exception(functionCode, ExceptionCode.IllegalDataAddress);
    if (err instanceof ModbusIllegalValueError) return exception(functionCode, ExceptionCode.IllegalDataValue);
    const failure =
      err instanceof ModbusModelError
        ? err
        : new ModbusModelError(methodOf(decoded), err instanceof Error ? err.message : `threw ${String(err)}`, { cause: err });
    return exception(functionCode, ExceptionCode.ServerDeviceFailure, failure);
  }
}

function methodOf(request: ModbusRequest): string {
  switch (request.kind) {
    case 'read-bits':
      return request.functionCode === 0x01 ? 'readCoils' : 'readDiscreteInputs';
    case 'read-registers':
      return request.functionCode === 0x03 ? 'readHoldingRegisters' : 'readInputRegisters';
    case 'write-coils':
      return 'writeCoils';
    case 'write-registers':
      return 'writeRegisters';
    case 'read-device-id':
      return 'deviceIdentification';
  }
}

async function execute(request: ModbusRequest, model: ModbusDataModel): Promise<PduAnswer> {
  switch (request.kind) {
    case 'read-bits': {
      const bits =
        request.functionCode === 0x01
          ? await model.readCoils(request.address, request.quantity)
          : await model.readDiscreteInputs(request.address, request.quantity);
      checkShape(methodOf(request), bits, request.quantity, (value) => typeof value === 'boolean', 'a boolean');
      return { pdu: readBitsResponse(request.functionCode, bits) };
    }
    case 'read-registers': {
      const registers =
        request.functionCode === 0x03
          ? await model.readHoldingRegisters(request.address, request.quantity)
          : await model.readInputRegisters(request.address, request.quantity);
      checkShape(
        methodOf(request),
        registers,
        request.quantity,
        (value) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff,
        'an integer 0..65535',
      );
      return { pdu: readRegistersResponse(request.functionCode, registers) };
    }
    case 'write-coils':
      await model.writeCoils(request.address, request.values);
      return { pdu: writeResponse(request) };
    case 'write-registers':
      await model.writeRegisters(request.address, request.values);
      return { pdu: writeResponse(request) };
    case 'read-device-id': {
      const answer = readDeviceIdentification(identificationObjects(await model.deviceIdentification()), request.readCode, request.objectId);
      return 'pdu' in answer ? { pdu: answer.pdu } : exception(request.functionCode, answer.exception);
    }
  }
}

function checkShape(method: string, values: unknown, quantity: number, valid: (value: unknown) => boolean, what: string): void {
  if (!Array.isArray(values) || values.length !== quantity) {
    const got = Array.isArray(values) ? `${values.length} values` : typeof values;
    throw new ModbusModelError(method, `returned ${got} for a request of ${quantity}`);
  }
  const bad = values.findIndex((value) => !valid(value));
  if (bad >= 0) throw new ModbusModelError(method, `value ${bad} is ${JSON.stringify(values[bad])}, not ${what}`);
}
