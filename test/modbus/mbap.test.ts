/**
 * MBAP framing: the header layout of the Modbus Messaging on TCP/IP Implementation Guide, a stream
 * parser that survives any segmentation, and its refusal of streams that are not Modbus TCP.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModbusFrameError } from '../../firmware/modbus/errors.js';
import { MAX_ADU_LENGTH, MbapParser, encodeAdu, type MbapFrame } from '../../firmware/modbus/mbap.js';
import { adu, hex } from './helpers.js';

interface Plain {
  transactionId: number;
  unitId: number;
  pdu: string;
}

function plain(frame: MbapFrame): Plain {
  return { transactionId: frame.transactionId, unitId: frame.unitId, pdu: hex(frame.pdu) };
}

function drain(parser: MbapParser): Plain[] {
  const frames: Plain[] = [];
  for (let frame = parser.next(); frame; frame = parser.next()) frames.push(plain(frame));
  return frames;
}

const frameArb = fc.record({
  transactionId: fc.integer({ min: 0, max: 0xffff }),
  unitId: fc.integer({ min: 0, max: 0xff }),
  pdu: fc.uint8Array({ minLength: 1, maxLength: 253 }),
});

/** Splits bytes at random cut points, as TCP segmentation may. */
function segments(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    out.push(bytes.subarray(start, point));
    start = point;
  }
  return out;
}

describe('encodeAdu', () => {
  it('lays out transaction id, protocol id 0, length of unit id + PDU, unit id', () => {
    expect(hex(encodeAdu(0x0001, 0x11, Buffer.from([0x03, 0x00, 0x6b, 0x00, 0x03])))).toBe('00 01 00 00 00 06 11 03 00 6b 00 03');
    expect(hex(encodeAdu(0xbeef, 0xff, Buffer.from([0x81, 0x02])))).toBe('be ef 00 00 00 03 ff 81 02');
  });

  it('refuses PDUs that no MBAP length can cover', () => {
    expect(() => encodeAdu(1, 1, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => encodeAdu(1, 1, Buffer.alloc(254))).toThrow(RangeError);
    expect(encodeAdu(1, 1, Buffer.alloc(253)).length).toBe(MAX_ADU_LENGTH);
  });
});

describe('MbapParser', () => {
  const request = adu(0x0001, 0x01, [0x03, 0x00, 0x6b, 0x00, 0x03]);

  it('returns a frame pushed whole, then null', () => {
    const parser = new MbapParser();
    parser.push(request);
    expect(drain(parser)).toEqual([{ transactionId: 1, unitId: 1, pdu: '03 00 6b 00 03' }]);
    expect(parser.buffered).toBe(0);
  });

  it('returns a frame split at every possible position only once it is complete', () => {
    for (let cut = 1; cut < request.length; cut++) {
      const parser = new MbapParser();
      parser.push(request.subarray(0, cut));
      expect(parser.next()).toBeNull();
      expect(parser.buffered).toBe(cut);
      parser.push(request.subarray(cut));
      expect(drain(parser).map((frame) => frame.pdu)).toEqual(['03 00 6b 00 03']);
    }
  });

  it('returns several frames from one push, and keeps the start of the next', () => {
    const parser = new MbapParser();
    const second = adu(0x0002, 0xff, [0x2b, 0x0e, 0x01, 0x00]);
    parser.push(Buffer.concat([request, second, request.subarray(0, 9)]));
    expect(drain(parser)).toEqual([
      { transactionId: 1, unitId: 1, pdu: '03 00 6b 00 03' },
      { transactionId: 2, unitId: 255, pdu: '2b 0e 01 00' },
    ]);
    expect(parser.buffered).toBe(9);
  });

  it('accepts the shortest and longest lengths, 2 and 254', () => {
    const parser = new MbapParser();
    parser.push(Buffer.concat([adu(7, 1, [0x07]), adu(8, 1, Buffer.alloc(253, 0x10))]));
    expect(parser.next()?.pdu.length).toBe(1);
    expect(parser.next()?.pdu.length).toBe(253);
    expect(parser.next()).toBeNull();
  });

  it.each([
    ['protocol id 1', '00 01 00 01 00 06 01 03 00 00 00 01', 'protocolId', 1],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n').toString('hex'), 'protocolId', 0x5420],
    ['length 0', '00 05 00 00 00 00', 'length', 0],
    ['length 1', '00 05 00 00 00 01 01', 'length', 1],
    ['length 255', '00 05 00 00 00 ff', 'length', 255],
    ['length 0xFFFF', '00 05 00 00 ff ff', 'length', 0xffff],
  ])('stops at %s, as soon as the six header bytes are in, and stays stopped', (_name, bytes, field, value) => {
    const parser = new MbapParser();
    parser.push(Buffer.from(bytes.replaceAll(' ', ''), 'hex').subarray(0, 6));
    let thrown: unknown;
    try {
      parser.next();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ModbusFrameError);
    const error = thrown as ModbusFrameError;
    expect(error.code).toBe('ERR_MODBUS_FRAME');
    expect(error.field).toBe(field);
    expect(error.value).toBe(value);
    expect(parser.error).toBe(error);
    expect(parser.buffered).toBe(0);
    parser.push(request);
    expect(parser.buffered).toBe(0);
    expect(() => parser.next()).toThrow(error);
  });

  it('returns every frame of any concatenation, however it is segmented, buffering less than one ADU after draining', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map((frame) => adu(frame.transactionId, frame.unitId, Buffer.from(frame.pdu))));
        const parser = new MbapParser();
        const got: Plain[] = [];
        for (const segment of segments(stream, cuts)) {
          parser.push(segment);
          got.push(...drain(parser));
          expect(parser.buffered).toBeLessThan(MAX_ADU_LENGTH);
        }
        expect(got).toEqual(frames.map((frame) => ({ transactionId: frame.transactionId, unitId: frame.unitId, pdu: hex(Buffer.from(frame.pdu)) })));
        expect(parser.buffered).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('returns the complete frames before a truncated one and holds exactly the truncated bytes', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 5 }), frameArb, fc.nat(), (complete, last, cut) => {
        const whole = adu(last.transactionId, last.unitId, Buffer.from(last.pdu));
        const truncated = whole.subarray(0, cut % whole.length);
        const parser = new MbapParser();
        parser.push(Buffer.concat([...complete.map((frame) => adu(frame.transactionId, frame.unitId, Buffer.from(frame.pdu))), truncated]));
        expect(drain(parser)).toHaveLength(complete.length);
        expect(parser.buffered).toBe(truncated.length);
      }),
    );
  });

  it('on random bytes, throws nothing but ModbusFrameError and never holds a full ADU after draining', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 10 }), (chunks) => {
        const parser = new MbapParser();
        for (const chunk of chunks) {
          parser.push(Buffer.from(chunk));
          try {
            drain(parser);
          } catch (err) {
            expect(err).toBeInstanceOf(ModbusFrameError);
            expect(parser.error).toBe(err);
          }
          expect(parser.buffered).toBeLessThan(MAX_ADU_LENGTH);
        }
      }),
      { numRuns: 500 },
    );
  });
});
