import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConfigFile, resolveConfig } from '../../monitor/config.js';
import { Monitor, type MonitorOptions } from '../../monitor/monitor.js';
import type { TargetState, Transition } from '../../monitor/state.js';
import { silent } from '../helpers/log.js';


/** Starts a monitor on a config document (validated as a file would be). */
export function startMonitor(document: ConfigFile, options: Partial<MonitorOptions> = {}): Monitor {
  return Monitor.start({ config: resolveConfig(document, 'test'), logger: silent, alertGraceMs: 0, ...options });
}

/**
 * Resolves with the next transition of `target` to `to` (or to any state when `to` is undefined),
 * rejecting with what the target was doing when `timeoutMs` passes first.
 */
export function nextTransition(monitor: Monitor, target: string, to: TargetState | undefined, timeoutMs = 5000): Promise<Transition> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${target} did not turn ${to ?? 'anything'} within ${timeoutMs} ms; it is ${JSON.stringify(monitor.target(target))}`));
    }, timeoutMs);
    const off = monitor.onTransition((transition) => {
      if (transition.target !== target || (to !== undefined && transition.to !== to)) return;
      clearTimeout(timer);
      off();
      resolve(transition);
    });
  });
}

/** The target's state now, or once it reaches `to`. */
export async function reach(monitor: Monitor, target: string, to: TargetState, timeoutMs = 5000): Promise<void> {
  if (monitor.target(target)?.state === to) return;
  await nextTransition(monitor, target, to, timeoutMs);
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hc-monitor-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves with the results of the next `count` probes of `target`, in order. */
export function nextResults(monitor: Monitor, target: string, count: number, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const results: string[] = [];
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${target}: ${results.length} of ${count} probe results within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = monitor.onResult((config, outcome) => {
      if (config.name !== target) return;
      results.push(outcome.result);
      if (results.length < count) return;
      clearTimeout(timer);
      off();
      resolve(results);
    });
  });
}
