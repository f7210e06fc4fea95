import { HandcheckError, type HandcheckErrorOptions } from '../../config/errors.js';

/** The gate policy asks for a mode this build cannot run (before mode needs the NFQUEUE addon). */
export class GateModeUnavailableError extends HandcheckError {
  readonly service: string;
  readonly mode: string;

  constructor(service: string, mode: string, why: string, options: HandcheckErrorOptions = {}) {
    super('ERR_GATE_MODE_UNAVAILABLE', `service ${service}: gate mode '${mode}' is not available: ${why}`, options);
    this.service = service;
    this.mode = mode;
  }
}

/** The gate was closed: it no longer listens, and a diagnosis it ran is no longer wanted. */
export class GateClosedError extends HandcheckError {
  constructor(service: string, what: string) {
    super('ERR_GATE_CLOSED', `service ${service}: gate closed, ${what}`);
  }
}

/** The gate's server could not listen on the address of its service. */
export class GateListenError extends HandcheckError {
  readonly address: string;

  constructor(service: string, address: string, options: HandcheckErrorOptions) {
    const detail = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super('ERR_GATE_LISTEN', `service ${service}: cannot listen on ${address}: ${detail}`, options);
    this.address = address;
  }
}

/** The self-diagnosis of a service did not settle before its deadline; the abort reason its signal carries. */
export class DiagnosisTimeoutError extends HandcheckError {
  readonly timeoutMs: number;

  constructor(service: string, timeoutMs: number) {
    super('ERR_DIAG_TIMEOUT', `service ${service}: self-diagnosis gave no verdict within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A guard's probe cannot run: its socket needs SO_MARK (the ioctl addon's markedTcpSocket, and
 * CAP_NET_ADMIN) so that its SYN skips the guard's own queue.
 */
export class GuardProbeUnavailableError extends HandcheckError {
  readonly service: string;

  constructor(service: string, why: string, options: HandcheckErrorOptions = {}) {
    super('ERR_GUARD_PROBE_UNAVAILABLE', `service ${service}: a guard's probe is not available: ${why}`, options);
    this.service = service;
  }
}
