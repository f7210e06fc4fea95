/**
 * The base of every error handcheck throws, in the room every other room may import (hal/, sim/,
 * firmware/, app/ and monitor/ alike). Each class carries a stable `code` (`ERR_*`) that callers and
 * logs match on; messages are for people and may change. Every code is listed in docs/errors.md and a
 * test keeps that catalogue complete.
 */

export interface HandcheckErrorOptions {
  cause?: unknown;
}

/** Base of every error handcheck throws. */
export class HandcheckError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options: HandcheckErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}
