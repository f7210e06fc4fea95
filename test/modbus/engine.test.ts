/**
 * Request PDUs in, response PDUs out, against the request/response examples of the Modbus Application
 * Protocol spec V1.1b3 (sections 6.1-6.12, 6.21 and 7) and its quantity and address rules.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TableDataModel, type ModbusDataModel } from '../../firmware/modbus/data-model.js';
import { answerPdu } from '../../firmware/modbus/engine.js';
import { ModbusConfigError, ModbusIllegalValueError, ModbusModelError } from '../../firmware/modbus/errors.js';
import { isWriteFunction, packBits, unpackBits } from '../../firmware/modbus/pdu.js';
import { hex, identification, specModel } from './helpers.js';

const readOnly = (functionCode: number): boolean => !isWriteFunction(functionCode);

async function ask(model: ModbusDataModel, bytes: number[], permits?: (functionCode: number) => boolean): Promise<string> {
  return hex((await answerPdu(Buffer.from(bytes), { model, ...(permits ? { permits } : {}) })).pdu);
}

function ascii(text: string): string {
  return hex(Buffer.from(text, 'ascii'));
}

describe('spec examples (Modbus Application Protocol V1.1b3)', () => {
  it('6.1 read coils 20-38', async () => {
    expect(await ask(specModel(), [0x01, 0x00, 0x13, 0x00, 0x13])).toBe('01 03 cd 6b 05');
  });

  it('6.2 read discrete inputs 197-218', async () => {
    expect(await ask(specModel(), [0x02, 0x00, 0xc4, 0x00, 0x16])).toBe('02 03 ac db 35');
  });

  it('6.3 read holding registers 108-110', async () => {
    expect(await ask(specModel(), [0x03, 0x00, 0x6b, 0x00, 0x03])).toBe('03 06 02 2b 00 00 00 64');
  });

  it('6.4 read input register 9', async () => {
    expect(await ask(specModel(), [0x04, 0x00, 0x08, 0x00, 0x01])).toBe('04 02 00 0a');
  });

  it('6.5 write single coil 173 ON, echoed', async () => {
    const model = specModel();
    expect(await ask(model, [0x05, 0x00, 0xac, 0xff, 0x00])).toBe('05 00 ac ff 00');
    expect(model.coils[172]).toBe(true);
    expect(await ask(model, [0x05, 0x00, 0xac, 0x00, 0x00])).toBe('05 00 ac 00 00');
    expect(model.coils[172]).toBe(false);
  });

  it('6.6 write single register 2 to 0x0003, echoed', async () => {
    const model = specModel();
    expect(await ask(model, [0x06, 0x00, 0x01, 0x00, 0x03])).toBe('06 00 01 00 03');
    expect(model.holdingRegisters[1]).toBe(3);
  });

  it('6.11 write multiple coils 20-29 from CD 01', async () => {
    const model = specModel();
    // Coil 30 (address 29) is past the quantity: the zero padding bits of the last byte must not clear it.
    model.coils[29] = true;
    expect(await ask(model, [0x0f, 0x00, 0x13, 0x00, 0x0a, 0x02, 0xcd, 0x01])).toBe('0f 00 13 00 0a');
    expect(model.coils.slice(19, 29)).toEqual([true, false, true, true, false, false, true, true, true, false]);
    expect(model.coils[29]).toBe(true);
  });

  it('6.12 write multiple registers 2-3 with 0x000A 0x0102', async () => {
    const model = specModel();
    expect(await ask(model, [0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0a, 0x01, 0x02])).toBe('10 00 01 00 02');
    expect(model.holdingRegisters.slice(1, 3)).toEqual([10, 258]);
  });

  it('7 exception example: coil 1186 does not exist -> 81 02', async () => {
    expect(await ask(specModel(), [0x01, 0x04, 0xa1, 0x00, 0x01])).toBe('81 02');
  });

  it('6.21 read basic device identification from object 0', async () => {
    const model = new TableDataModel({ identification: { vendorName: 'Company identification', productCode: 'Product code XX', majorMinorRevision: 'V2.11' } });
    // The spec's example shows conformity 0x01 and an object length 0x0D for the 15-character
    // "Product code XX"; this device also serves individual access (0x81) and sends the real length.
    expect(await ask(model, [0x2b, 0x0e, 0x01, 0x00])).toBe(
      `2b 0e 01 81 00 00 03 00 16 ${ascii('Company identification')} 01 0f ${ascii('Product code XX')} 02 05 ${ascii('V2.11')}`,
    );
  });
});

describe('quantity limits and addresses', () => {
  const big = (): TableDataModel => new TableDataModel({ coils: 2000, discreteInputs: 2000, holdingRegisters: 300, inputRegisters: 300, identification });

  it('reads 1..2000 bits and refuses 0 and 2001 with exception 3', async () => {
    const model = big();
    model.coils[1999] = true;
    const full = Buffer.from((await answerPdu(Buffer.from([0x01, 0x00, 0x00, 0x07, 0xd0]), { model })).pdu);
    expect(full.length).toBe(2 + 250);
    expect(full[1]).toBe(250);
    expect(full[251]).toBe(0x80);
    expect(await ask(model, [0x02, 0x00, 0x00, 0x00, 0x01])).toBe('02 01 00');
    expect(await ask(model, [0x01, 0x00, 0x00, 0x00, 0x00])).toBe('81 03');
    expect(await ask(model, [0x02, 0x00, 0x00, 0x07, 0xd1])).toBe('82 03');
  });

  it('reads 1..125 registers and refuses 126 with exception 3 even where the table is too small', async () => {
    const model = big();
    const full = (await answerPdu(Buffer.from([0x03, 0x00, 0x00, 0x00, 0x7d]), { model })).pdu;
    expect(full.length).toBe(2 + 250);
    expect(full.readUInt16BE(2 + 124 * 2)).toBe(0);
    expect(await ask(model, [0x04, 0x00, 0x00, 0x00, 0x7e])).toBe('84 03');
    expect(await ask(model, [0x04, 0x01, 0x00, 0x00, 0x7e])).toBe('84 03');
    expect(await ask(model, [0x03, 0x00, 0x00, 0x00, 0x00])).toBe('83 03');
  });

  it('answers exception 2 past the table and past address 0xFFFF', async () => {
    const model = big();
    expect(await ask(model, [0x03, 0x01, 0x2c, 0x00, 0x01])).toBe('83 02');
    expect(await ask(model, [0x03, 0x01, 0x2b, 0x00, 0x01])).toBe('03 02 00 00');
    expect(await ask(model, [0x03, 0x01, 0x2b, 0x00, 0x02])).toBe('83 02');
    expect(await ask(model, [0x04, 0xff, 0xff, 0x00, 0x02])).toBe('84 02');
    expect(await ask(model, [0x10, 0xff, 0xff, 0x00, 0x02, 0x04, 0, 1, 0, 2])).toBe('90 02');
    expect(await ask(model, [0x06, 0x01, 0x2c, 0x00, 0x01])).toBe('86 02');
  });

  it('writes 1..1968 coils and 1..123 registers, refusing more and inconsistent byte counts with exception 3', async () => {
    const model = big();
    const coils = [0x0f, 0x00, 0x00, 0x07, 0xb0, 246, ...new Array<number>(246).fill(0xff)];
    expect(await ask(model, coils)).toBe('0f 00 00 07 b0');
    expect(model.coils.filter(Boolean).length).toBe(1968);
    expect(await ask(model, [0x0f, 0x00, 0x00, 0x07, 0xb1, 247, ...new Array<number>(247).fill(0)])).toBe('8f 03');
    expect(await ask(model, [0x0f, 0x00, 0x00, 0x00, 0x09, 0x01, 0xff])).toBe('8f 03');
    expect(await ask(model, [0x0f, 0x00, 0x00, 0x00, 0x09, 0x02, 0xff])).toBe('8f 03');
    const registers = [0x10, 0x00, 0x00, 0x00, 0x7b, 246, ...new Array<number>(246).fill(0x11)];
    expect(await ask(model, registers)).toBe('10 00 00 00 7b');
    expect(model.holdingRegisters[122]).toBe(0x1111);
    expect(await ask(model, [0x10, 0x00, 0x00, 0x00, 0x7c, 248, ...new Array<number>(248).fill(0)])).toBe('90 03');
    expect(await ask(model, [0x10, 0x00, 0x00, 0x00, 0x02, 0x03, 0, 1, 0])).toBe('90 03');
    expect(await ask(model, [0x10, 0x00, 0x00, 0x00, 0x02, 0x04, 0, 1, 0])).toBe('90 03');
    expect(await ask(model, [0x10, 0x00, 0x00, 0x00, 0x00, 0x00])).toBe('90 03');
  });

  it('accepts only FF00 and 0000 for a single coil', async () => {
    const model = big();
    expect(await ask(model, [0x05, 0x00, 0x00, 0x12, 0x34])).toBe('85 03');
    expect(await ask(model, [0x05, 0x00, 0x00, 0x00, 0xff])).toBe('85 03');
    expect(model.coils[0]).toBe(false);
  });

  it('answers exception 3 to PDUs whose length disagrees with their function', async () => {
    const model = big();
    expect(await ask(model, [0x03, 0x00, 0x00, 0x00])).toBe('83 03');
    expect(await ask(model, [0x03, 0x00, 0x00, 0x00, 0x01, 0x00])).toBe('83 03');
    expect(await ask(model, [0x06, 0x00, 0x00])).toBe('86 03');
    expect(await ask(model, [0x2b, 0x0e, 0x01])).toBe('ab 03');
  });

  it('answers exception 1 to functions it does not serve', async () => {
    const model = big();
    expect(await ask(model, [0x07])).toBe('87 01');
    expect(await ask(model, [0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0])).toBe('97 01');
    expect(await ask(model, [0x2b, 0x0d, 0x00])).toBe('ab 01');
    expect(await ask(model, [0x81, 0x00, 0x00, 0x00, 0x01])).toBe('81 01');
  });

  it('refuses the function codes the client may not use (here the four writes) with exception 1, and still reads', async () => {
    const model = specModel();
    expect(await ask(model, [0x05, 0x00, 0x00, 0xff, 0x00], readOnly)).toBe('85 01');
    expect(await ask(model, [0x06, 0x00, 0x00, 0x00, 0x01], readOnly)).toBe('86 01');
    expect(await ask(model, [0x0f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01], readOnly)).toBe('8f 01');
    expect(await ask(model, [0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x01], readOnly)).toBe('90 01');
    expect(model.coils[0]).toBe(false);
    expect(model.holdingRegisters[0]).toBe(1000);
    expect(await ask(model, [0x03, 0x00, 0x6b, 0x00, 0x01], readOnly)).toBe('03 02 02 2b');
  });

  it('matches a reference of the read rules for any function, address and quantity', async () => {
    const model = specModel();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.oneof(fc.integer({ min: 0, max: 320 }), fc.integer({ min: 0, max: 0xffff })),
        fc.oneof(fc.integer({ min: 0, max: 130 }), fc.integer({ min: 0, max: 2100 })),
        async (code, address, quantity) => {
          const request = Buffer.alloc(5);
          request.writeUInt8(code, 0);
          request.writeUInt16BE(address, 1);
          request.writeUInt16BE(quantity, 3);
          const { pdu } = await answerPdu(request, { model });
          const max = code <= 2 ? 2000 : 125;
          const table = [model.coils, model.discreteInputs, model.holdingRegisters, model.inputRegisters][code - 1] ?? [];
          const expected = table.slice(address, address + quantity);
          if (quantity < 1 || quantity > max) {
            expect(hex(pdu)).toBe(hex(Buffer.from([0x80 | code, 3])));
          } else if (address + quantity > 300) {
            expect(hex(pdu)).toBe(hex(Buffer.from([0x80 | code, 2])));
          } else if (code <= 2) {
            expect(pdu[1]).toBe(Math.ceil(quantity / 8));
            expect(unpackBits(pdu.subarray(2), quantity)).toEqual(expected);
          } else {
            expect(pdu[1]).toBe(quantity * 2);
            expect(Array.from({ length: quantity }, (_, i) => pdu.readUInt16BE(2 + i * 2))).toEqual(expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('packs bits LSB first and unpacks them back', () => {
    expect(hex(packBits([true, false, true, true, false, false, true, true, true]))).toBe('cd 01');
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 2000 }), (bits) => {
        const packed = packBits(bits);
        expect(packed.length).toBe(Math.ceil(bits.length / 8));
        expect(unpackBits(packed, bits.length)).toEqual(bits);
      }),
    );
  });
});

describe('data model failures', () => {
  const failing = (overrides: Partial<ModbusDataModel>): ModbusDataModel => Object.assign(specModel(), overrides);

  it('answers exception 4 and reports the failure when the model throws or rejects', async () => {
    const sync = await answerPdu(Buffer.from([0x04, 0x00, 0x00, 0x00, 0x01]), {
      model: failing({
        readInputRegisters: () => {
          throw new Error('i2c-1@0x48 NACK');
        },
      }),
    });
    expect(hex(sync.pdu)).toBe('84 04');
    expect(sync.failure).toBeInstanceOf(ModbusModelError);
    expect(sync.failure?.code).toBe('ERR_MODBUS_MODEL');
    expect(sync.failure?.method).toBe('readInputRegisters');
    expect(sync.failure?.message).toContain('i2c-1@0x48 NACK');

    const rejected = await answerPdu(Buffer.from([0x06, 0x00, 0x00, 0x00, 0x01]), {
      model: failing({ writeRegisters: () => Promise.reject(new Error('settings store is read-only')) }),
    });
    expect(hex(rejected.pdu)).toBe('86 04');
    expect(rejected.failure?.method).toBe('writeRegisters');
  });

  it('answers exception 4 when a read returns the wrong count or a value that is not a register', async () => {
    const short = await answerPdu(Buffer.from([0x03, 0x00, 0x00, 0x00, 0x02]), { model: failing({ readHoldingRegisters: () => [1] }) });
    expect(hex(short.pdu)).toBe('83 04');
    expect(short.failure?.message).toContain('returned 1 values for a request of 2');
    const wide = await answerPdu(Buffer.from([0x04, 0x00, 0x00, 0x00, 0x01]), { model: failing({ readInputRegisters: () => [70000] }) });
    expect(hex(wide.pdu)).toBe('84 04');
    const bits = await answerPdu(Buffer.from([0x01, 0x00, 0x00, 0x00, 0x01]), { model: failing({ readCoils: () => [1 as unknown as boolean] }) });
    expect(hex(bits.pdu)).toBe('81 04');
  });

  it('answers exception 3 when the model refuses a written value, and serves async models', async () => {
    const model = failing({
      writeRegisters: (address) => Promise.reject(new ModbusIllegalValueError('holding registers', address, 'setpoint above 85 C')),
      readHoldingRegisters: async (address, quantity) => Array.from({ length: quantity }, (_, i) => address + i),
    });
    expect(await ask(model, [0x06, 0x00, 0x05, 0x01, 0x00])).toBe('86 03');
    expect(await ask(model, [0x03, 0x00, 0x05, 0x00, 0x02])).toBe('03 04 00 05 00 06');
  });

  it('writes a table all or nothing', async () => {
    const model = specModel();
    expect(await ask(model, [0x10, 0x01, 0x2b, 0x00, 0x02, 0x04, 0, 1, 0, 2])).toBe('90 02');
    expect(model.holdingRegisters[299]).toBe(1299);
    expect(() => model.writeRegisters(0, [1, 65536])).toThrow(ModbusIllegalValueError);
    expect(model.holdingRegisters[0]).toBe(1000);
  });

  it('refuses table sizes and initial values Modbus cannot address', () => {
    expect(() => new TableDataModel({ coils: 65537, identification })).toThrow(ModbusConfigError);
    expect(() => new TableDataModel({ inputRegisters: [1, -1], identification })).toThrow(/inputRegisters\[1\]/);
    expect(new TableDataModel({ holdingRegisters: [7, 8], identification }).readHoldingRegisters(0, 2)).toEqual([7, 8]);
  });
});

describe('read device identification (6.21)', () => {
  const regular = (): TableDataModel => specModel();

  function objects(pdu: Buffer): { id: number; value: string }[] {
    const out: { id: number; value: string }[] = [];
    for (let offset = 7; offset < pdu.length; ) {
      const length = pdu[offset + 1] ?? 0;
      out.push({ id: pdu[offset] ?? -1, value: pdu.subarray(offset + 2, offset + 2 + length).toString('ascii') });
      offset += 2 + length;
    }
    expect(out.length).toBe(pdu[6]);
    return out;
  }

  async function read(model: ModbusDataModel, readCode: number, objectId: number): Promise<Buffer> {
    return (await answerPdu(Buffer.from([0x2b, 0x0e, readCode, objectId]), { model })).pdu;
  }

  it('streams the regular objects 0x00-0x06 with conformity 0x82', async () => {
    const pdu = await read(regular(), 0x02, 0x00);
    expect(hex(pdu.subarray(0, 7))).toBe('2b 0e 02 82 00 00 07');
    expect(objects(pdu).map((object) => object.value)).toEqual([
      'Company identification',
      'Product code XX',
      'V2.11',
      'https://handcheck.example/',
      'handcheck appliance',
      'sim-pi4',
      'modbus tests',
    ]);
  });

  it('answers a basic stream with objects 0x00-0x02 only, and restarts at 0 for an object outside the category', async () => {
    expect(objects(await read(regular(), 0x01, 0x00)).map((object) => object.id)).toEqual([0, 1, 2]);
    expect(objects(await read(regular(), 0x01, 0x05)).map((object) => object.id)).toEqual([0, 1, 2]);
    expect(objects(await read(regular(), 0x02, 0x04)).map((object) => object.id)).toEqual([4, 5, 6]);
    expect(objects(await read(regular(), 0x02, 0x42)).map((object) => object.id)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('answers an extended stream at its own conformity level', async () => {
    const pdu = await read(regular(), 0x03, 0x00);
    expect(hex(pdu.subarray(0, 7))).toBe('2b 0e 03 82 00 00 07');
  });

  it('serves individual access, and exception 2 for an object it does not have', async () => {
    expect(hex(await read(regular(), 0x04, 0x05))).toBe(`2b 0e 04 82 00 00 01 05 07 ${ascii('sim-pi4')}`);
    expect(hex(await read(regular(), 0x04, 0x07))).toBe('ab 02');
    expect(hex(await read(regular(), 0x04, 0x80))).toBe('ab 02');
    const basic = new TableDataModel({ identification: { vendorName: 'v', productCode: 'p', majorMinorRevision: '1.0' } });
    expect(hex(await read(basic, 0x04, 0x03))).toBe('ab 02');
    expect(hex(await read(basic, 0x02, 0x00)).slice(0, 20)).toBe('2b 0e 02 81 00 00 03');
  });

  it('serves private objects from 0x80 in the extended category, conformity 0x83, beyond regular streams', async () => {
    const model = new TableDataModel({ identification: { ...identification, productName: 'p', extended: ['board-temp ok', 'uplink-sfp failed: receiver loss of signal (RX_LOS)'] } });
    const stream = await read(model, 0x03, 0x80);
    expect(hex(stream.subarray(0, 7))).toBe('2b 0e 03 83 00 00 02');
    expect(objects(stream)).toEqual([
      { id: 0x80, value: 'board-temp ok' },
      { id: 0x81, value: 'uplink-sfp failed: receiver loss of signal (RX_LOS)' },
    ]);
    expect(objects(await read(model, 0x02, 0x00)).every((object) => object.id < 0x80)).toBe(true);
    expect(objects(await read(model, 0x04, 0x81))).toEqual([{ id: 0x81, value: 'uplink-sfp failed: receiver loss of signal (RX_LOS)' }]);
    expect(hex(await read(model, 0x04, 0x82))).toBe('ab 02');
  });

  it('refuses read device id codes other than 1-4 with exception 3', async () => {
    expect(hex(await read(regular(), 0x00, 0x00))).toBe('ab 03');
    expect(hex(await read(regular(), 0x05, 0x00))).toBe('ab 03');
  });

  it('splits objects that do not fit one PDU with more-follows, and the continuation completes them', async () => {
    const long = (c: string): string => c.repeat(100);
    const model = new TableDataModel({
      identification: { vendorName: long('v'), productCode: long('p'), majorMinorRevision: 'V1', vendorUrl: long('u'), productName: 'name' },
    });
    const first = await read(model, 0x02, 0x00);
    expect(hex(first.subarray(0, 7))).toBe('2b 0e 02 82 ff 03 03');
    expect(first.length).toBeLessThanOrEqual(253);
    const second = await read(model, 0x02, first[5] ?? 0);
    expect(hex(second.subarray(0, 7))).toBe('2b 0e 02 82 00 00 02');
    expect([...objects(first), ...objects(second)].map((object) => object.value)).toEqual([long('v'), long('p'), 'V1', long('u'), 'name']);
  });

  it('serves an object of 244 characters, the most one PDU holds, and fails the model past that or for non-ASCII', async () => {
    const fits = await read(new TableDataModel({ identification: { ...identification, productName: 'x'.repeat(244) } }), 0x04, 0x04);
    expect(fits.length).toBe(253);
    const tooLong = await answerPdu(Buffer.from([0x2b, 0x0e, 0x04, 0x04]), {
      model: new TableDataModel({ identification: { ...identification, productName: 'x'.repeat(245) } }),
    });
    expect(hex(tooLong.pdu)).toBe('ab 04');
    expect(tooLong.failure?.message).toContain('productName is 245 characters');
    const accented = await answerPdu(Buffer.from([0x2b, 0x0e, 0x01, 0x00]), {
      model: new TableDataModel({ identification: { ...identification, vendorName: 'Müller' } }),
    });
    expect(hex(accented.pdu)).toBe('ab 04');
  });
});
