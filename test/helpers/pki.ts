/**
 * A throwaway PKI made with the openssl command line, for MODBUS/TCP Security tests: a CA, a server
 * certificate for 127.0.0.1, client certificates carrying a role in the Modbus Organization's role
 * extension (OID 1.3.6.1.4.1.50316.802.1, an ASN.1 UTF8String), one without a role, and one signed by
 * a CA the server does not trust. EC P-256 keys, so making them takes a fraction of a second.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  /** The CA the server trusts for client certificates, which also signs the server's. */
  ca: string;
  server: KeyPair;
  /** Client certificates by name: one per role asked for, `no-role`, `raw-role` (the role not in a UTF8String), and `stranger` (the first role, another CA). */
  clients: Record<string, KeyPair>;
  remove(): Promise<void>;
}

const extensions = (roles: readonly string[]): string =>
  [
    '[server]',
    'basicConstraints = CA:FALSE',
    'subjectAltName = IP:127.0.0.1, DNS:localhost',
    'extendedKeyUsage = serverAuth',
    // The role's bytes without the UTF8String around them, as some tooling writes it.
    '[raw-role]',
    'basicConstraints = CA:FALSE',
    `1.3.6.1.4.1.50316.802.1 = DER:${Buffer.from('operator').toString('hex')}`,
    '[no-role]',
    'basicConstraints = CA:FALSE',
    'extendedKeyUsage = clientAuth',
    ...roles.flatMap((role, i) => [
      `[role-${i}]`,
      'basicConstraints = CA:FALSE',
      'extendedKeyUsage = clientAuth',
      `1.3.6.1.4.1.50316.802.1 = ASN1:FORMAT:UTF8,UTF8String:${role}`,
    ]),
  ].join('\n');

/** Makes the PKI in a new temporary directory; `roles` become client certificates named after them. */
export async function makePki(roles: readonly string[]): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'handcheck-pki-'));
  const path = (name: string): string => join(dir, name);
  await writeFile(path('ext.cnf'), extensions(roles));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string) => run('openssl', ['req', '-x509', ...ec, '-keyout', path(`${name}.key`), '-out', path(`${name}.crt`), '-subj', `/CN=${name}`, '-days', '2']);
  await Promise.all([makeCa('ca'), makeCa('other-ca')]);
  let serial = 1;
  const issue = async (name: string, section: string, ca = 'ca'): Promise<KeyPair> => {
    await run('openssl', ['req', ...ec, '-keyout', path(`${name}.key`), '-out', path(`${name}.csr`), '-subj', `/CN=${name}`]);
    await run('openssl', [
      'x509', '-req', '-in', path(`${name}.csr`), '-CA', path(`${ca}.crt`), '-CAkey', path(`${ca}.key`), '-set_serial', String(serial++),
      '-days', '2', '-extfile', path('ext.cnf'), '-extensions', section, '-out', path(`${name}.crt`),
    ]);
    return { cert: path(`${name}.crt`), key: path(`${name}.key`) };
  };
  const server = await issue('server', 'server');
  const clients: Record<string, KeyPair> = {};
  for (const [i, role] of roles.entries()) clients[role] = await issue(`client-${i}`, `role-${i}`);
  clients['no-role'] = await issue('no-role', 'no-role');
  clients['raw-role'] = await issue('raw-role', 'raw-role');
  clients.stranger = await issue('stranger', roles.length > 0 ? 'role-0' : 'no-role', 'other-ca');
  return { dir, ca: path('ca.crt'), server, clients, remove: () => rm(dir, { recursive: true, force: true }) };
}
