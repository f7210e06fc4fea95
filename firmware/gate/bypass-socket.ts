/**
 * The socket of a guard's probe: a TCP socket with SO_MARK set to BYPASS_MARK_BIT before it connects,
 * so its SYN skips the guard's own NFQUEUE rule (`--mark 0x0/0x3`) and goes on through INPUT as if the
 * gate's rules were not there. Unmarked, the probe's SYN would wait in the queue for the very
 * diagnosis that waits for the probe. The mark rides on the skb through the loopback device to the
 * INPUT hook (loopback_xmit in drivers/net/loopback.c does not scrub it). Node's net cannot set
 * SO_MARK, so the ioctl addon makes the socket (native/src/socket_mark.cc) and Node adopts it
 * (libuv's uv_tcp_open takes an unconnected socket; connect() then runs as on any net.Socket).
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { type IoctlBinding, requireIoctlAddon } from '../../hal/linux/ioctl.js';
import { BYPASS_MARK_BIT } from './before.js';
import { GuardProbeUnavailableError } from './errors.js';

/**
 * Makes the probe's sockets of guard `service`, or GuardProbeUnavailableError naming what is missing:
 * the addon, its markedTcpSocket (older sources), or the capability. One socket is made and closed
 * here, so a missing capability stops the start instead of failing every diagnosis.
 */
export function bypassSockets(service: string): (family: 4 | 6) => Socket {
  let markedTcpSocket: IoctlBinding['markedTcpSocket'];
  try {
    markedTcpSocket = requireIoctlAddon('SO_MARK on its socket').markedTcpSocket;
  } catch (err) {
    throw new GuardProbeUnavailableError(service, err instanceof Error ? err.message : String(err), { cause: err });
  }
  if (markedTcpSocket === undefined) {
    throw new GuardProbeUnavailableError(
      service,
      `the ioctl addon was built from older sources (it has no markedTcpSocket, which sets SO_MARK on the probe's socket so its SYN skips the guard's queue); rebuild it with "npm run build:native"`,
    );
  }
  const make = markedTcpSocket;
  try {
    closeSync(make(4, BYPASS_MARK_BIT));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GuardProbeUnavailableError(
      service,
      code === 'EPERM'
        ? 'setting SO_MARK on its socket needs CAP_NET_ADMIN (or CAP_NET_RAW, Linux 5.17 on), which the guard needs anyway (run as root, or with systemd AmbientCapabilities=CAP_NET_ADMIN)'
        : `cannot make its socket: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  return (family) => {
    const fd = make(family, BYPASS_MARK_BIT);
    try {
      return new Socket({ fd });
    } catch (err) {
      closeSync(fd);
      throw new GuardProbeUnavailableError(service, `cannot adopt its socket: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
}
