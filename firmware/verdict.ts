/**
 * The result of one self-diagnosis (patent item 13) and the contract between the gate, which asks for
 * verdicts, and the self-diagnosis of a service, which gives them.
 */

/** One thing found wrong. */
export interface Failure {
  /** Component id from the board entry, `'app'` for the application behind the port, or
   * {@link SELF_DIAGNOSIS} when the diagnosis itself could not run to a result. */
  component: string;
  /** A stable `ERR_*` code, or the component state that failed the verdict (`'failed'`). */
  code: string;
  /** For people: what was wrong, naming the target and the value. */
  reason: string;
}

export interface Verdict {
  /** True when the service may go on: its application and every component it depends on are healthy. */
  ok: boolean;
  /** Empty when `ok`; otherwise at least one entry. */
  failures: Failure[];
  /** Epoch milliseconds, on the diagnosing clock, when the diagnosis started. */
  startedAt: number;
  durationMs: number;
  /**
   * True when the gate did not diagnose for this connection but reused the verdict of a connection it
   * still holds (claim 5). `startedAt` and `durationMs` then describe the original diagnosis.
   */
  reused: boolean;
}

/**
 * The self-diagnosis of one service. The gate calls it, never concurrently for one service, and gives
 * it a deadline: when `signal` aborts (deadline passed, gate closing) the result is no longer wanted and
 * the diagnosis should release what it holds. A rejection or a thrown error is an abnormal verdict; it
 * never means "healthy".
 */
export type Diagnose = (signal: AbortSignal) => Promise<Verdict>;

/** `Failure.component` of failures the gate records when the diagnosis gave no verdict of its own. */
export const SELF_DIAGNOSIS = 'self-diagnosis';

/** The diagnosis did not settle before its deadline. */
export const ERR_DIAG_TIMEOUT = 'ERR_DIAG_TIMEOUT';
/** The diagnosis threw or rejected with an error that carries no `ERR_*` code of its own. */
export const ERR_DIAG_FAILED = 'ERR_DIAG_FAILED';
/** The diagnosis resolved with something that is not a Verdict. */
export const ERR_DIAG_INVALID = 'ERR_DIAG_INVALID';
