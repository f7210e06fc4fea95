/**
 * Suites that need root (mount and network namespaces, other users) or system tools: they run when
 * both are there, are skipped with the reason otherwise, and fail with it when HANDCHECK_REQUIRE_ROOT=1
 * (CI runs as root with every tool installed, so a skip there would hide a broken test).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describeWhen, notRoot } from '../helpers/requirements.js';

function onPath(tool: string): boolean {
  if (tool.startsWith('/')) return existsSync(tool);
  return (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, tool)));
}

/** Why the suite cannot run here, or undefined when it can. */
export function whyNotRunnable(purpose: string, tools: readonly string[]): string | undefined {
  const root = notRoot(purpose);
  if (root) return root;
  const missing = tools.filter((tool) => !onPath(tool));
  if (missing.length > 0) return `${purpose} needs ${missing.join(', ')}, not installed`;
  return undefined;
}

export function describeAsRoot(name: string, purpose: string, tools: readonly string[], body: () => void): void {
  describeWhen(whyNotRunnable(purpose, tools), name, body);
}
