/**
 * Read Device Identification (function 0x2B, MEI type 0x0E; Modbus Application Protocol V1.1b3, 6.21).
 *
 * Response PDU: 2B 0E readCode conformity moreFollows nextObjectId count, then per object: id length value.
 *
 * - Conformity level: 0x81 (basic, stream and individual access) when only the mandatory objects
 *   0x00-0x02 exist, 0x82 (regular, stream and individual) when any of 0x03-0x06 is present, 0x83
 *   (extended, stream and individual) when the model has private objects (0x80-0xFF).
 * - Stream access (read codes 1-3) returns the objects of the category from `objectId` on. A category
 *   above the conformity level is answered at the conformity level, and an `objectId` that names no
 *   object of the category restarts at object 0x00, both as the spec says.
 * - Objects that do not fit into one 253-byte PDU are left for the next request: moreFollows 0xFF and
 *   nextObjectId name where to continue.
 * - Individual access (read code 4) returns one object; one the device does not have is exception 0x02.
 */
import { deviceIdentificationObjects, type DeviceIdentification, firstExtendedObject } from './data-model.js';
import { ModbusModelError } from './errors.js';
import { MAX_PDU_LENGTH } from './mbap.js';
import { ExceptionCode, FunctionCode, MEI_READ_DEVICE_ID, ReadDeviceIdCode } from './pdu.js';

const HEADER_LENGTH = 7;
const MORE_FOLLOWS = 0xff;
/** The longest object value that fits a response on its own. */
export const MAX_OBJECT_LENGTH = MAX_PDU_LENGTH - HEADER_LENGTH - 2;

/** Highest object id of a stream category (basic or regular). */
function categoryEnd(level: number): number {
  return level === ReadDeviceIdCode.Basic ? 0x02 : level === ReadDeviceIdCode.Regular ? 0x7f : 0xff;
}

interface IdObject {
  id: number;
  value: Buffer;
}

/**
 * A text for an identification object, which Modbus defines as ASCII: accents dropped (Kühl -> Kuhl),
 * anything else printable-ASCII-less as '?', cut to what fits a response. A board's display name is
 * the deployer's to choose; it must not make every FC43 request fail.
 */
export function asciiObjectText(text: string): string {
  const ascii = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]/g, '?');
  return ascii.slice(0, MAX_OBJECT_LENGTH);
}

/**
 * The objects a model's identification provides, in id order. Throws ModbusModelError when a mandatory
 * object is missing, a value is not a printable ASCII string, or a value cannot fit a response.
 */
export function identificationObjects(identification: DeviceIdentification): IdObject[] {
  const objects: IdObject[] = [];
  for (const { id, key } of deviceIdentificationObjects) {
    const value: unknown = identification[key];
    if (value === undefined && id > 0x02) continue;
    if (typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value)) {
      throw new ModbusModelError('deviceIdentification', `${key} must be a printable ASCII string, got ${JSON.stringify(value)}`);
    }
    if (value.length > MAX_OBJECT_LENGTH) {
      throw new ModbusModelError('deviceIdentification', `${key} is ${value.length} characters, at most ${MAX_OBJECT_LENGTH} fit a response`);
    }
    objects.push({ id, value: Buffer.from(value, 'ascii') });
  }
  const extended = identification.extended ?? [];
  if (extended.length > 0x100 - firstExtendedObject) {
    throw new ModbusModelError('deviceIdentification', `${extended.length} extended objects, at most ${0x100 - firstExtendedObject} have an object id`);
  }
  extended.forEach((value, i) => {
    if (!/^[\x20-\x7e]*$/.test(value) || value.length > MAX_OBJECT_LENGTH) {
      throw new ModbusModelError('deviceIdentification', `extended object ${i} must be printable ASCII of at most ${MAX_OBJECT_LENGTH} characters, got ${JSON.stringify(value)}`);
    }
    objects.push({ id: firstExtendedObject + i, value: Buffer.from(value, 'ascii') });
  });
  return objects;
}

export type DeviceIdAnswer = { pdu: Buffer } | { exception: ExceptionCode };

export function readDeviceIdentification(objects: readonly IdObject[], readCode: ReadDeviceIdCode, objectId: number): DeviceIdAnswer {
  const level = objects.some((object) => object.id > categoryEnd(ReadDeviceIdCode.Regular))
    ? ReadDeviceIdCode.Extended
    : objects.some((object) => object.id > categoryEnd(ReadDeviceIdCode.Basic))
      ? ReadDeviceIdCode.Regular
      : ReadDeviceIdCode.Basic;
  const conformity = 0x80 | level;
  const header = (moreFollows: number, nextObjectId: number, count: number): Buffer =>
    Buffer.from([FunctionCode.EncapsulatedInterface, MEI_READ_DEVICE_ID, readCode, conformity, moreFollows, nextObjectId, count]);

  if (readCode === ReadDeviceIdCode.Individual) {
    const object = objects.find((candidate) => candidate.id === objectId);
    if (!object) return { exception: ExceptionCode.IllegalDataAddress };
    return { pdu: Buffer.concat([header(0, 0, 1), encodeObject(object)]) };
  }

  const end = categoryEnd(Math.min(readCode, level));
  const category = objects.filter((object) => object.id <= end);
  const start = category.some((object) => object.id === objectId) ? objectId : 0x00;
  const parts: Buffer[] = [];
  let length = HEADER_LENGTH;
  for (const object of category) {
    if (object.id < start) continue;
    const encoded = encodeObject(object);
    if (length + encoded.length > MAX_PDU_LENGTH) {
      return { pdu: Buffer.concat([header(MORE_FOLLOWS, object.id, parts.length), ...parts]) };
    }
    parts.push(encoded);
    length += encoded.length;
  }
  return { pdu: Buffer.concat([header(0, 0, parts.length), ...parts]) };
}

function encodeObject(object: IdObject): Buffer {
  return Buffer.concat([Buffer.from([object.id, object.value.length]), object.value]);
}
