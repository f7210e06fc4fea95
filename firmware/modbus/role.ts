/**
 * The role of a MODBUS/TCP Security client: the certificate extension the Modbus Organization
 * registered for it (OID 1.3.6.1.4.1.50316.802.1, its value an ASN.1 UTF8String), read from the DER of
 * the client's certificate. Node's X509Certificate exposes no arbitrary extensions, so this walks the
 * few DER structures between the certificate and its extensions (RFC 5280, 4.1) itself.
 */

/** What a certificate says about its role. */
export type RoleExtension =
  | { kind: 'role'; role: string }
  /** No role extension: the spec hands the authorization rules a NULL role. */
  | { kind: 'none' }
  /** A role extension that is not a DER UTF8String, or a certificate this reader cannot walk. */
  | { kind: 'malformed'; reason: string };

export const ROLE_OID = '1.3.6.1.4.1.50316.802.1';
/** The OID's DER content octets. */
const roleOidBytes = Buffer.from([0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0x89, 0x0c, 0x86, 0x22, 0x01]);

const SEQUENCE = 0x30;
const OID = 0x06;
const BOOLEAN = 0x01;
const OCTET_STRING = 0x04;
const UTF8_STRING = 0x0c;
/** tbsCertificate's `[3] EXPLICIT Extensions`. */
const EXTENSIONS = 0xa3;

interface Tlv {
  tag: number;
  /** Content octets. */
  value: Buffer;
  /** Offset just past this TLV in the buffer it was read from. */
  end: number;
}

class DerError extends Error {}

function readTlv(buffer: Buffer, offset: number): Tlv {
  const tag = buffer[offset];
  let length = buffer[offset + 1];
  if (tag === undefined || length === undefined) throw new DerError(`truncated at byte ${offset}`);
  // High tag numbers (0x1f) never occur on the path this reader walks.
  if ((tag & 0x1f) === 0x1f) throw new DerError(`unexpected high tag number at byte ${offset}`);
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw new DerError(`unsupported length of ${octets} octets at byte ${offset}`);
    length = 0;
    for (let i = 0; i < octets; i++) {
      const octet = buffer[start + i];
      if (octet === undefined) throw new DerError(`truncated length at byte ${offset}`);
      length = length * 256 + octet;
    }
    start += octets;
  }
  const end = start + length;
  if (end > buffer.length) throw new DerError(`length ${length} at byte ${offset} runs past the end`);
  return { tag, value: buffer.subarray(start, end), end };
}

function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < value.length; ) {
    const tlv = readTlv(value, offset);
    out.push(tlv);
    offset = tlv.end;
  }
  return out;
}

function expect(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv?.tag !== tag) throw new DerError(`${what} is not where RFC 5280 puts it`);
  return tlv;
}

/** The role a client certificate (DER) carries; the first role extension if there are several. */
export function roleOf(certificate: Buffer): RoleExtension {
  try {
    const cert = expect(readTlv(certificate, 0), SEQUENCE, 'Certificate');
    const tbs = expect(children(cert.value)[0], SEQUENCE, 'tbsCertificate');
    const extensions = children(tbs.value).find((tlv) => tlv.tag === EXTENSIONS);
    if (!extensions) return { kind: 'none' };
    const list = expect(children(extensions.value)[0], SEQUENCE, 'Extensions');
    for (const extension of children(list.value)) {
      const parts = children(expect(extension, SEQUENCE, 'Extension').value);
      if (expect(parts[0], OID, 'extnID').value.equals(roleOidBytes)) {
        const octets = expect(parts[1]?.tag === BOOLEAN ? parts[2] : parts[1], OCTET_STRING, 'extnValue');
        const tag = octets.value[0] ?? 0;
        if (tag !== UTF8_STRING) return { kind: 'malformed', reason: `the role extension holds tag 0x${tag.toString(16)}, not a UTF8String` };
        const inner = readTlv(octets.value, 0);
        if (inner.end !== octets.value.length) return { kind: 'malformed', reason: 'the role extension holds more than its UTF8String' };
        const role = new TextDecoder('utf-8', { fatal: true }).decode(inner.value);
        return { kind: 'role', role };
      }
    }
    return { kind: 'none' };
  } catch (err) {
    return { kind: 'malformed', reason: err instanceof TypeError ? 'the role extension is not valid UTF-8' : (err as Error).message };
  }
}
