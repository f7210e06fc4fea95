/**
 * Admission: when the gate asks for a verdict, per gate mode. The gate (gate.ts) owns the server and
 * what happens to a socket once it has a verdict; an admission only decides when and how each accepted
 * socket gets its verdict. A new mode is a new Admission registered in `createAdmission`.
 */
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { GatePolicy } from '../../config/board-config.js';
import { AfterAdmission } from './after.js';
import { BeforeAdmission, type BeforeStats } from './before.js';
import type { VerdictSource } from './verdicts.js';
import type { Verdict } from '../verdict.js';

export interface AdmissionContext {
  service: string;
  /** The service's resolved gate policy, for fields only one mode reads (before: `queue`, `failClosed`). */
  policy: Readonly<GatePolicy>;
  verdicts: VerdictSource;
  /** The gate's logger. */
  log: Logger;
  /** Gives `socket` its verdict; the gate then hands it to the application or cuts it. Once per socket. */
  decide: (socket: Socket, verdict: Verdict) => void;
  /** A connection refused before any socket existed (before mode: RST to the SYN); counted and reported as a reset. */
  refused: (peer: string, verdict: Verdict) => void;
  /** Before mode: how long the kernel waits for the firmware's next liveness refresh before SYNs bypass the queue. */
  livenessMs: number;
}

export interface Admission {
  /** Whether the server must create sockets paused, so that nothing reads them before the verdict. */
  readonly pauseOnConnect: boolean;
  /** Sockets accepted but not yet decided. */
  readonly waiting: number;
  /** Before mode: the SYNs its queue saw and how they were answered. */
  readonly queueStats?: BeforeStats;
  /** Takes a socket the server just accepted; calls `decide` for it now or later. */
  admit(socket: Socket): void;
  /** The gate is closing: returns the sockets still waiting, which will not be decided. */
  close(): Socket[];
  /** The server is bound to `address`; the gate listens once this resolves, and closes the server if it rejects. */
  start?(address: AddressInfo): Promise<void>;
  /** After close(): releases what start() set up. The gate awaits it while closing. */
  stop?(): Promise<void>;
}

export type GateMode = 'after' | 'before';

export function createAdmission(mode: GateMode, ctx: AdmissionContext): Admission {
  switch (mode) {
    case 'after':
      return new AfterAdmission(ctx);
    case 'before':
      return new BeforeAdmission(ctx);
  }
}
