/**
 * Finding and loading the project's Node-API addons (native/, `npm run build:native`). Every addon is
 * optional, so a missing or unloadable one is an answer here, not an error: each caller decides
 * whether it falls back or fails, and says in its own error what the addon is for and how to get it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the addon `file` may be: the path the environment variable `envVar` names, alone, when it is
 * set (resolved against the working directory, so the existence check and the load agree); else
 * native/build/Release beside the sources (hal/linux/ run through tsx: two levels up) or beside dist/
 * (dist/hal/linux/: three).
 */
export function nativeAddonCandidates(file: string, envVar: string): string[] {
  const fromEnv = process.env[envVar];
  if (fromEnv) return [resolve(fromEnv)];
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..', 'native', 'build', 'Release', file), join(here, '..', '..', '..', 'native', 'build', 'Release', file)];
}

export type NativeAddonLookup<T> =
  | { state: 'loaded'; path: string; binding: T }
  | { state: 'missing'; lookedFor: string[] }
  /** The file is there but the loader refused it (a missing shared library, another Node ABI, ...). */
  | { state: 'unloadable'; path: string; reason: string; cause: unknown };

/** Loads the first of nativeAddonCandidates(file, envVar) that exists. */
export function loadNativeAddon<T>(file: string, envVar: string): NativeAddonLookup<T> {
  const lookedFor = nativeAddonCandidates(file, envVar);
  const path = lookedFor.find((candidate) => existsSync(candidate));
  if (path === undefined) return { state: 'missing', lookedFor };
  try {
    return { state: 'loaded', path, binding: createRequire(import.meta.url)(path) as T };
  } catch (cause) {
    return { state: 'unloadable', path, reason: cause instanceof Error ? cause.message : String(cause), cause };
  }
}
