/**
 * Suites that need root (mount and network namespaces, other users) or system tools: they run when
 * both are there, are skipped with the reason otherwise, and fail with it when HANDCHECK_REQUIRE_ROOT=1
 * (CI runs as root with every tool installed, so a skip there would hide a broken test).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe } from 'vitest';

function onPath(tool: string): boolean {
  if (tool.startsWith('/')) return existsSync(tool);
  return (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, tool)));
}

/** Why the suite cannot run here, or undefined when it can. */
export function whyNotRunnable(purpose: string, tools: readonly string[]): string | undefined {
  if (process.getuid?.() !== 0) return `${purpose} needs root`;
  const missing = tools.filter((tool) => !onPath(tool));
  if (missing.length > 0) return `${purpose} needs ${missing.join(', ')}, not installed`;
  return undefined;
}

export function describeAsRoot(name: string, purpose: string, tools: readonly string[], body: () => void): void {
  const why = whyNotRunnable(purpose, tools);
  if (why === undefined) {
    describe(name, body);
  } else if (process.env.HANDCHECK_REQUIRE_ROOT === '1') {
    describe(name, () => {
      throw new Error(`${why}, and HANDCHECK_REQUIRE_ROOT=1`);
    });
  } else {
    process.stderr.write(`skipping "${name}": ${why} (set HANDCHECK_REQUIRE_ROOT=1 to fail instead)\n`);
    describe.skip(name, body);
  }
}
