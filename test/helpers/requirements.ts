/**
 * One policy for tests that need root or a tool this machine may lack: without it they are skipped
 * and say why; with HANDCHECK_REQUIRE_ROOT=1 (set by .ci/run, which is root and installs every tool)
 * they fail instead, so a missing install step can never pass for green.
 */
import { type TestContext, describe, expect } from 'vitest';

export const required = process.env.HANDCHECK_REQUIRE_ROOT === '1';

/** Why a root-only suite cannot run here, or undefined as root. */
export function notRoot(purpose: string): string | undefined {
  return process.getuid?.() === 0 ? undefined : `${purpose} needs root`;
}

/** A describe that runs when `why` is undefined; otherwise skipped with the reason, or failing under CI. */
export function describeWhen(why: string | undefined, name: string, body: () => void): void {
  if (why === undefined) {
    describe(name, body);
  } else if (required) {
    describe(name, () => {
      throw new Error(`${why}, and HANDCHECK_REQUIRE_ROOT=1`);
    });
  } else {
    process.stderr.write(`skipping "${name}": ${why} (set HANDCHECK_REQUIRE_ROOT=1 to fail instead)\n`);
    describe.skip(name, body);
  }
}

/** Inside a test: skip it with the reason when something is missing, or fail it under CI. */
export function requireOrSkip(ctx: TestContext, missing: string | null | undefined): void {
  if (!missing) return;
  if (required) expect.fail(`HANDCHECK_REQUIRE_ROOT=1 but ${missing}`);
  ctx.skip(missing);
}
