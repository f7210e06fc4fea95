/**
 * The MODBUS/TCP Security role extension (OID 1.3.6.1.4.1.50316.802.1, an ASN.1 UTF8String) read from
 * certificates the openssl command line made (test/helpers/pki.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleOf } from '../../firmware/modbus/role.js';
import { type Pki, makePki } from '../helpers/pki.js';

let pki: Pki;
const der = (name: string): Buffer => new X509Certificate(readFileSync(pki.clients[name]!.cert)).raw;

beforeAll(async () => {
  pki = await makePki(['operator', 'Betriebsführer']);
});
afterAll(() => pki.remove());

describe('roleOf', () => {
  it('reads the role, UTF-8 included', () => {
    expect(roleOf(der('operator'))).toEqual({ kind: 'role', role: 'operator' });
    expect(roleOf(der('Betriebsführer'))).toEqual({ kind: 'role', role: 'Betriebsführer' });
  });

  it('says none for a certificate without the extension, and for the server certificate', () => {
    expect(roleOf(der('no-role'))).toEqual({ kind: 'none' });
    expect(roleOf(new X509Certificate(readFileSync(pki.server.cert)).raw)).toEqual({ kind: 'none' });
  });

  it('calls a role that is not a UTF8String malformed, naming the tag', () => {
    expect(roleOf(der('raw-role'))).toEqual({ kind: 'malformed', reason: 'the role extension holds tag 0x6f, not a UTF8String' });
  });

  it('never throws on bytes that are not a certificate: every truncation is malformed or none', () => {
    const full = der('operator');
    for (let length = 0; length < full.length; length++) {
      expect(['malformed', 'none']).toContain(roleOf(full.subarray(0, length)).kind);
    }
    expect(roleOf(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]))).toMatchObject({ kind: 'malformed' });
  });
});
