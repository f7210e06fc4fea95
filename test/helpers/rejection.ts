import { expect } from 'vitest';
import { HalError } from '../../hal/errors.js';

/** The HalError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<HalError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HalError);
  return err as HalError;
}
