/**
 * Loading of the optional native packages (onoff, i2c-bus, @serialport/bindings-cpp). They are
 * optionalDependencies: a laptop running the sim board may not have them, or may have them built for
 * another Node ABI. So they are imported only when a Linux backend first needs one, and a failure
 * becomes an ERR_HAL_UNSUPPORTED that says which package and how to fix it, instead of a crash at
 * start-up.
 */
import { HalUnsupportedError } from '../errors.js';

/** Imports a module; tests pass one that fails or returns a fake. */
export type ModuleLoader = () => Promise<unknown>;

/**
 * The default loader. The specifier is a variable so that TypeScript does not demand declarations for
 * packages that ship none (i2c-bus) and bundlers do not try to resolve a package that may be absent.
 */
export function importPackage(name: string): ModuleLoader {
  return () => import(name) as Promise<unknown>;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * Loads `pkg` with `load` and picks the part the backend uses with `pick` (which returns undefined when
 * the module does not have the expected shape). `purpose` names the backend for the message.
 */
export async function loadOptional<T>(
  pkg: string,
  purpose: string,
  load: ModuleLoader,
  pick: (mod: unknown) => T | undefined,
): Promise<T> {
  let mod: unknown;
  try {
    mod = await load();
  } catch (err) {
    const code = errorCode(err);
    const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    const detail = err instanceof Error ? err.message : String(err);
    const message = missing
      ? `${purpose} needs the optional package ${pkg}, which is not installed (${detail}); install it with \`npm install ${pkg}\` on the board (it builds a native addon: needs python3, make and g++)`
      : `${purpose} could not load the optional package ${pkg}: ${detail}; rebuild it for this Node.js with \`npm rebuild ${pkg}\``;
    throw new HalUnsupportedError(message, { target: pkg, cause: err });
  }
  const picked = pick(mod);
  if (picked === undefined) {
    throw new HalUnsupportedError(`${purpose}: the package ${pkg} does not export what it should (an unexpected version?)`, { target: pkg });
  }
  return picked;
}

/** The module object, or its `default` export when a CommonJS package comes through ESM interop. */
export function moduleMember<K extends string>(mod: unknown, key: K): unknown {
  if (typeof mod !== 'object' || mod === null) return undefined;
  const direct = (mod as Record<string, unknown>)[key];
  if (direct !== undefined) return direct;
  const fallback = (mod as { default?: unknown }).default;
  return typeof fallback === 'object' && fallback !== null ? (fallback as Record<string, unknown>)[key] : undefined;
}
