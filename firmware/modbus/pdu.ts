/**
 * Modbus PDUs (Modbus Application Protocol V1.1b3): function codes, exception codes, request decoding
 * with the spec's checks, and response encoding. No I/O and no data model here: `engine.ts` joins a
 * decoded request to a model.
 *
 * Decoding follows the order of the spec's state diagrams (6.1 ff.): an unsupported function is
 * exception 0x01; then a quantity outside its limits, a byte count that disagrees with the quantity, or
 * a PDU whose length disagrees with its fields is 0x03; then an address range past 0xFFFF is 0x02.
 */

export const FunctionCode = {
  ReadCoils: 0x01,
  ReadDiscreteInputs: 0x02,
  ReadHoldingRegisters: 0x03,
  ReadInputRegisters: 0x04,
  WriteSingleCoil: 0x05,
  WriteSingleRegister: 0x06,
  WriteMultipleCoils: 0x0f,
  WriteMultipleRegisters: 0x10,
  EncapsulatedInterface: 0x2b,
} as const;

/** MEI type of Read Device Identification inside function code 0x2B. */
export const MEI_READ_DEVICE_ID = 0x0e;

export const ExceptionCode = {
  IllegalFunction: 0x01,
  IllegalDataAddress: 0x02,
  IllegalDataValue: 0x03,
  ServerDeviceFailure: 0x04,
  GatewayTargetFailedToRespond: 0x0b,
} as const;
export type ExceptionCode = (typeof ExceptionCode)[keyof typeof ExceptionCode];

/** Quantity limits per request (spec 6.1-6.12). */
export const limits = {
  readBits: 2000,
  readRegisters: 125,
  writeCoils: 1968,
  writeRegisters: 123,
} as const;

/** Read Device ID codes (spec 6.21): three stream categories and individual access. */
export const ReadDeviceIdCode = {
  Basic: 0x01,
  Regular: 0x02,
  Extended: 0x03,
  Individual: 0x04,
} as const;
export type ReadDeviceIdCode = (typeof ReadDeviceIdCode)[keyof typeof ReadDeviceIdCode];

const COIL_ON = 0xff00;
const COIL_OFF = 0x0000;

export type ModbusRequest =
  | { kind: 'read-bits'; functionCode: 0x01 | 0x02; address: number; quantity: number }
  | { kind: 'read-registers'; functionCode: 0x03 | 0x04; address: number; quantity: number }
  | { kind: 'write-coils'; functionCode: 0x05 | 0x0f; address: number; values: boolean[] }
  | { kind: 'write-registers'; functionCode: 0x06 | 0x10; address: number; values: number[] }
  | { kind: 'read-device-id'; functionCode: 0x2b; readCode: ReadDeviceIdCode; objectId: number };

/** A request the PDU layer already rejects; `functionCode` is the one to answer with (without 0x80). */
export interface RejectedRequest {
  kind: 'rejected';
  functionCode: number;
  exception: ExceptionCode;
}

/** True for function codes that change the data model: the ones a service's `writeAllow` governs. */
export function isWriteFunction(functionCode: number): boolean {
  return (
    functionCode === FunctionCode.WriteSingleCoil ||
    functionCode === FunctionCode.WriteSingleRegister ||
    functionCode === FunctionCode.WriteMultipleCoils ||
    functionCode === FunctionCode.WriteMultipleRegisters
  );
}

/** The exception response to a request with this function code. */
export function exceptionPdu(functionCode: number, exception: ExceptionCode): Buffer {
  return Buffer.from([(functionCode | 0x80) & 0xff, exception]);
}

/** Packs bits LSB first: the first bit is bit 0 of the first byte, unused high bits are 0. */
export function packBits(bits: readonly boolean[]): Buffer {
  const bytes = Buffer.alloc(Math.ceil(bits.length / 8));
  bits.forEach((bit, i) => {
    if (bit) bytes[i >> 3] = (bytes[i >> 3] ?? 0) | (1 << (i & 7));
  });
  return bytes;
}

export function unpackBits(bytes: Uint8Array, quantity: number): boolean[] {
  return Array.from({ length: quantity }, (_, i) => (((bytes[i >> 3] ?? 0) >> (i & 7)) & 1) === 1);
}

function rejected(functionCode: number, exception: ExceptionCode): RejectedRequest {
  return { kind: 'rejected', functionCode, exception };
}

/** Checks a quantity and the address range it spans; null when both are fine. */
function checkRange(functionCode: number, address: number, quantity: number, max: number): RejectedRequest | null {
  if (quantity < 1 || quantity > max) return rejected(functionCode, ExceptionCode.IllegalDataValue);
  if (address + quantity > 0x10000) return rejected(functionCode, ExceptionCode.IllegalDataAddress);
  return null;
}

/** Decodes a request PDU (function code and data), applying every check that needs no data model. */
export function decodeRequest(pdu: Buffer): ModbusRequest | RejectedRequest {
  const functionCode = pdu[0] ?? 0;
  const illegalValue = rejected(functionCode, ExceptionCode.IllegalDataValue);
  switch (functionCode) {
    case FunctionCode.ReadCoils:
    case FunctionCode.ReadDiscreteInputs:
    case FunctionCode.ReadHoldingRegisters:
    case FunctionCode.ReadInputRegisters: {
      if (pdu.length !== 5) return illegalValue;
      const address = pdu.readUInt16BE(1);
      const quantity = pdu.readUInt16BE(3);
      if (functionCode === FunctionCode.ReadCoils || functionCode === FunctionCode.ReadDiscreteInputs) {
        return checkRange(functionCode, address, quantity, limits.readBits) ?? { kind: 'read-bits', functionCode, address, quantity };
      }
      return checkRange(functionCode, address, quantity, limits.readRegisters) ?? { kind: 'read-registers', functionCode, address, quantity };
    }
    case FunctionCode.WriteSingleCoil: {
      if (pdu.length !== 5) return illegalValue;
      const value = pdu.readUInt16BE(3);
      if (value !== COIL_ON && value !== COIL_OFF) return illegalValue;
      return { kind: 'write-coils', functionCode, address: pdu.readUInt16BE(1), values: [value === COIL_ON] };
    }
    case FunctionCode.WriteSingleRegister: {
      if (pdu.length !== 5) return illegalValue;
      return { kind: 'write-registers', functionCode, address: pdu.readUInt16BE(1), values: [pdu.readUInt16BE(3)] };
    }
    case FunctionCode.WriteMultipleCoils:
    case FunctionCode.WriteMultipleRegisters: {
      if (pdu.length < 6) return illegalValue;
      const address = pdu.readUInt16BE(1);
      const quantity = pdu.readUInt16BE(3);
      const byteCount = pdu.readUInt8(5);
      const coils = functionCode === FunctionCode.WriteMultipleCoils;
      const max = coils ? limits.writeCoils : limits.writeRegisters;
      if (quantity < 1 || quantity > max) return illegalValue;
      const expectedBytes = coils ? Math.ceil(quantity / 8) : quantity * 2;
      if (byteCount !== expectedBytes || pdu.length !== 6 + byteCount) return illegalValue;
      const overflow = checkRange(functionCode, address, quantity, max);
      if (overflow) return overflow;
      const data = pdu.subarray(6);
      if (coils) return { kind: 'write-coils', functionCode, address, values: unpackBits(data, quantity) };
      const values = Array.from({ length: quantity }, (_, i) => data.readUInt16BE(i * 2));
      return { kind: 'write-registers', functionCode, address, values };
    }
    case FunctionCode.EncapsulatedInterface: {
      // Only Read Device Identification is served; other MEI types (CANopen 0x0D) are not supported functions.
      if (pdu.length < 2 || pdu[1] !== MEI_READ_DEVICE_ID) return rejected(functionCode, ExceptionCode.IllegalFunction);
      if (pdu.length !== 4) return illegalValue;
      const readCode = pdu.readUInt8(2);
      if (readCode < ReadDeviceIdCode.Basic || readCode > ReadDeviceIdCode.Individual) return illegalValue;
      return { kind: 'read-device-id', functionCode, readCode: readCode as ReadDeviceIdCode, objectId: pdu.readUInt8(3) };
    }
    default:
      return rejected(functionCode, ExceptionCode.IllegalFunction);
  }
}

export function readBitsResponse(functionCode: number, bits: readonly boolean[]): Buffer {
  const packed = packBits(bits);
  return Buffer.concat([Buffer.from([functionCode, packed.length]), packed]);
}

export function readRegistersResponse(functionCode: number, registers: readonly number[]): Buffer {
  const pdu = Buffer.allocUnsafe(2 + registers.length * 2);
  pdu[0] = functionCode;
  pdu[1] = registers.length * 2;
  registers.forEach((value, i) => pdu.writeUInt16BE(value, 2 + i * 2));
  return pdu;
}

/**
 * The response to a successful write: functions 5 and 6 echo the request, 15 and 16 answer with the
 * starting address and quantity.
 */
export function writeResponse(request: Extract<ModbusRequest, { kind: 'write-coils' | 'write-registers' }>): Buffer {
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = request.functionCode;
  pdu.writeUInt16BE(request.address, 1);
  if (request.functionCode === FunctionCode.WriteSingleCoil) {
    pdu.writeUInt16BE(request.values[0] ? COIL_ON : COIL_OFF, 3);
  } else if (request.functionCode === FunctionCode.WriteSingleRegister) {
    pdu.writeUInt16BE(request.values[0] ?? 0, 3);
  } else {
    pdu.writeUInt16BE(request.values.length, 3);
  }
  return pdu;
}
