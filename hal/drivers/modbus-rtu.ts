/**
 * Modbus RTU framing (Modbus over Serial Line V1.02, section 2.5), shared by the serial-peer driver
 * and the simulated peer so both ends agree on the wire format: unit id, function code, data, then
 * CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) sent low byte first.
 */

/** CRC-16/MODBUS of `data`. */
export function crc16Modbus(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** `frame` (unit id first) with its CRC appended, low byte first. */
export function withCrc(frame: Uint8Array): Buffer {
  const out = Buffer.alloc(frame.length + 2);
  out.set(frame);
  out.writeUInt16LE(crc16Modbus(frame), frame.length);
  return out;
}

/** True when the last two bytes of `frame` are the CRC of the rest. */
export function hasValidCrc(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const body = frame.subarray(0, frame.length - 2);
  const sent = frame[frame.length - 2]! | (frame[frame.length - 1]! << 8);
  return crc16Modbus(body) === sent;
}

export const functionCodes = {
  readHoldingRegisters: 0x03,
  writeSingleRegister: 0x06,
} as const;

/** Exception codes a server answers with (function code | 0x80). */
export const exceptionNames: Readonly<Record<number, string>> = {
  0x01: 'ILLEGAL FUNCTION',
  0x02: 'ILLEGAL DATA ADDRESS',
  0x03: 'ILLEGAL DATA VALUE',
  0x04: 'SERVER DEVICE FAILURE',
  0x05: 'ACKNOWLEDGE',
  0x06: 'SERVER DEVICE BUSY',
  0x08: 'MEMORY PARITY ERROR',
  0x0a: 'GATEWAY PATH UNAVAILABLE',
  0x0b: 'GATEWAY TARGET DEVICE FAILED TO RESPOND',
};

export function exceptionName(code: number): string {
  return `${exceptionNames[code] ?? 'UNKNOWN EXCEPTION'} (0x${code.toString(16).padStart(2, '0')})`;
}

/** Function 3 request: read `quantity` holding registers from `address`. */
export function readHoldingRegistersRequest(unitId: number, address: number, quantity: number): Buffer {
  const pdu = Buffer.alloc(6);
  pdu[0] = unitId;
  pdu[1] = functionCodes.readHoldingRegisters;
  pdu.writeUInt16BE(address, 2);
  pdu.writeUInt16BE(quantity, 4);
  return withCrc(pdu);
}

/**
 * Length of the answer to a function-3 request once enough of it has arrived to tell, or
 * `undefined` while it cannot be told yet. An answer that cannot belong to `unitId`'s function 3
 * has the length received so far: there is nothing more worth waiting for.
 */
export function readHoldingAnswerLength(received: Uint8Array, unitId: number): number | undefined {
  if (received.length < 2) return received.length === 1 && received[0] !== unitId ? 1 : undefined;
  if (received[0] !== unitId) return received.length;
  const fn = received[1]!;
  if (fn === (functionCodes.readHoldingRegisters | 0x80)) return 5;
  if (fn !== functionCodes.readHoldingRegisters) return received.length;
  if (received.length < 3) return undefined;
  return 5 + received[2]!;
}

/** Time on the wire for `bytes` characters, in ms: start bit, data bits, parity, stop bits. */
export function serialCharMs(baudRate: number, dataBits = 8, parity: string = 'none', stopBits = 1): number {
  return ((1 + dataBits + (parity === 'none' ? 0 : 1) + stopBits) * 1000) / baudRate;
}

/**
 * The silent interval that ends an RTU frame: 3.5 character times, fixed at 1.75 ms above 19200 baud
 * as the specification recommends.
 */
export function rtuFrameGapMs(baudRate: number, charMs: number): number {
  return baudRate > 19200 ? 1.75 : 3.5 * charMs;
}
