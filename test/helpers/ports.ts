import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A port nothing listens on at the moment (the kernel's pick for a socket just closed). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
