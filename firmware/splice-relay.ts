/**
 * The splice(2) relay of proxy services (native/src/splice.cc, `handcheck_splice.node`): a client and its
 * upstream, both connected, are handed to the addon, which moves their bytes through kernel pipes
 * instead of through two copies in JavaScript. It is optional like every native part: where it is not
 * built (or not Linux), `spliceAddon()` is undefined and the proxy pipes streams as before.
 *
 * The hand-over keeps Node's sockets open but idle: what Node had already read is taken out of its
 * buffers and sent first by the relay, reading is stopped, and the relay works on duplicates of the
 * descriptors. Node's handles are destroyed only once the relay has ended, so the gate's held
 * connection lives exactly as long as the spliced one and a gate that destroys it ends the relay.
 */
import type { Socket } from 'node:net';
import { loadNativeAddon, nativeAddonCandidates } from '../hal/linux/native-addon.js';

/** How a relay ended by itself: both FINs passed on, or one side failed (errno in `code`) and the other was reset. */
export type RelayOutcome = 'ended' | 'client-failed' | 'upstream-failed';

export interface RelayStats {
  toUpstream: number;
  toClient: number;
  /** Bytes read from one side and not yet taken by the other (in the pipes). */
  buffered: number;
  /** ms since a byte last moved either way. */
  idleMs: number;
}

interface NativeRelay {
  start(toUpstream: Buffer, toClient: Buffer): void;
  abort(resetClient: boolean): void;
  stats(): RelayStats;
}

export interface SpliceBinding {
  Relay: new (clientFd: number, upstreamFd: number, onEnd: (outcome: RelayOutcome, code: string | null) => void) => NativeRelay;
}

const ADDON_FILE = 'handcheck_splice.node';
const ADDON_ENV = 'HANDCHECK_SPLICE_ADDON';

/** Where the addon may be (HANDCHECK_SPLICE_ADDON, else native/build/Release), for messages. */
export function spliceAddonCandidates(): string[] {
  return nativeAddonCandidates(ADDON_FILE, ADDON_ENV);
}

let binding: SpliceBinding | undefined;

/** The addon, or undefined where it is not built or cannot be loaded (the proxy then pipes streams). */
export function spliceAddon(): SpliceBinding | undefined {
  if (binding || process.platform !== 'linux') return binding;
  const addon = loadNativeAddon<SpliceBinding>(ADDON_FILE, ADDON_ENV);
  if (addon.state === 'loaded') binding = addon.binding;
  return binding;
}

/** Node's TCP handle, of which the relay needs the descriptor and a stop to its reads. */
interface TcpHandle {
  fd: number;
  reading: boolean;
  readStop(): number;
}

function handleOf(socket: Socket): TcpHandle {
  return (socket as unknown as { _handle: TcpHandle })._handle;
}

/** What Node has read from `socket` and not yet delivered; afterwards Node reads no more from it. */
function takeOver(socket: Socket): Buffer {
  socket.pause();
  const chunks: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) chunks.push(chunk);
  // read() may have started the handle reading again; it stops before the loop takes another turn.
  const handle = handleOf(socket);
  handle.reading = false;
  handle.readStop();
  return Buffer.concat(chunks);
}

export interface SplicedPair {
  stats(): RelayStats;
  /** Ends the relay now: the upstream is reset, and the client too when `resetClient`. */
  abort(resetClient: boolean): void;
}

/**
 * Hands a connected client and upstream to the relay. When the relay cannot be made (EMFILE from dup or
 * pipe2) it throws with both sockets as they were, so the caller can still pipe them. `onEnd` hears of an ending the relay
 * found itself, not of an abort; either way the caller destroys both sockets afterwards.
 */
export function splicePair(addon: SpliceBinding, client: Socket, upstream: Socket, onEnd: (outcome: RelayOutcome, code: string | null) => void): SplicedPair {
  let idle: NodeJS.Timeout | undefined;
  let over = false;
  const native = new addon.Relay(handleOf(client).fd, handleOf(upstream).fd, (outcome, code) => {
    over = true;
    clearTimeout(idle);
    onEnd(outcome, code);
  });
  const toUpstream = takeOver(client);
  const toClient = takeOver(upstream);
  try {
    native.start(toUpstream, toClient);
  } catch (err) {
    // Back where Node keeps them, so that the caller's pipes carry them first.
    if (toUpstream.length > 0) client.unshift(toUpstream);
    if (toClient.length > 0) upstream.unshift(toClient);
    throw err;
  }

  // Node's idle timer on the client (the gate's idleTimeoutMs) counts only bytes Node itself moves, which
  // are none now: the relay's clock stands in for it, and 'timeout' still comes from the socket.
  const watchIdle = (): void => {
    const ms = client.timeout ?? 0;
    if (over || !(ms > 0)) return;
    client.setTimeout(0);
    const check = (): void => {
      if (over) return;
      const { idleMs } = native.stats();
      if (idleMs < ms) {
        idle = setTimeout(check, ms - idleMs);
        return;
      }
      client.emit('timeout');
      // The listener may set a new timeout (the gate's close timeout after its FIN).
      watchIdle();
    };
    idle = setTimeout(check, ms);
  };
  watchIdle();

  return {
    stats: () => native.stats(),
    abort: (resetClient) => {
      over = true;
      clearTimeout(idle);
      native.abort(resetClient);
    },
  };
}
