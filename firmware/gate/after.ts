import type { Socket } from 'node:net';
import type { Verdict } from '../verdict.js';
import type { Admission, AdmissionContext } from './admission.js';
import type { VerdictSource } from './verdicts.js';

/**
 * Claim 2: the kernel has completed the handshake; the socket stays paused (bytes the client sends wait
 * in the kernel) until the verdict. Reused verdicts decide synchronously; everything else waits for the
 * one running diagnosis, and all sockets that arrived meanwhile are decided together when it settles.
 */
export class AfterAdmission implements Admission {
  readonly pauseOnConnect = true;
  private readonly verdicts: VerdictSource;
  private readonly decide: AdmissionContext['decide'];
  private queue: Socket[] = [];
  private subscribed = false;

  constructor(ctx: AdmissionContext) {
    this.verdicts = ctx.verdicts;
    this.decide = ctx.decide;
  }

  get waiting(): number {
    return this.queue.length;
  }

  admit(socket: Socket): void {
    const reused = this.verdicts.reusable();
    if (reused !== undefined) {
      this.decide(socket, reused);
      return;
    }
    this.queue.push(socket);
    if (this.subscribed) return;
    this.subscribed = true;
    void this.verdicts.diagnose().then(this.flush);
  }

  close(): Socket[] {
    const left = this.queue;
    this.queue = [];
    return left;
  }

  private readonly flush = (verdict: Verdict): void => {
    this.subscribed = false;
    const batch = this.queue;
    this.queue = [];
    for (const socket of batch) this.decide(socket, verdict);
  };
}
