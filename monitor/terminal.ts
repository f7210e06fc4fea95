/**
 * What the monitor prints: on a terminal, a table redrawn in place, one line per target, the ones
 * that are down first; otherwise (or with --json) JSON lines, one per transition, and with
 * --results one per result as well.
 */
import type { Writable } from 'node:stream';
import type { TargetConfig } from './config.js';
import type { Monitor, TargetSnapshot } from './monitor.js';
import type { Observation, Transition } from './state.js';
import { formatHostPort } from '../config/host-port.js';

const colours: Record<string, string> = { up: '32', unknown: '90', timeout: '33', unreachable: '35', error: '35' };

function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d`;
}

/** The table as lines, at most `maxRows` targets (down ones first, then by name), padded to columns. */
export function renderTable(targets: readonly TargetSnapshot[], options: { now: number; maxRows: number; colour: boolean; width: number }): string[] {
  const down = (t: TargetSnapshot): number => (t.state === 'up' ? 2 : t.state === 'unknown' ? 1 : 0);
  const sorted = [...targets].sort((a, b) => down(a) - down(b) || a.name.localeCompare(b.name));
  const counts = { up: 0, down: 0, unknown: 0 };
  for (const t of targets) counts[t.state === 'up' ? 'up' : t.state === 'unknown' ? 'unknown' : 'down'] += 1;
  const shown = sorted.slice(0, Math.max(1, options.maxRows));
  const rows = [['TARGET', 'ADDRESS', 'MODE', 'STATE', 'FOR', 'CONNECT', 'REASON', 'LABELS']];
  for (const t of shown) {
    rows.push([
      t.name,
      formatHostPort(t),
      t.mode,
      t.pending ? `${t.state} (${t.pending.result} ${t.pending.count}/${t.pending.needed})` : t.state,
      t.since === undefined ? '' : age(options.now - t.since),
      t.last?.connectMs === undefined ? '' : `${t.last.connectMs.toFixed(2)}ms`,
      t.reason,
      Object.entries(t.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r, ri) =>
    r
      .map((cell, i) => {
        const padded = i === r.length - 1 ? cell : cell.padEnd(widths[i]!);
        if (!options.colour || ri === 0 || i !== 3) return padded;
        return `\x1b[${colours[shown[ri - 1]!.state] ?? '31'}m${padded}\x1b[0m`;
      })
      .join('  ')
      .slice(0, options.width + (options.colour && ri > 0 ? 9 : 0)),
  );
  const more = targets.length - shown.length;
  return [
    `handcheck monitor  ${targets.length} targets  ${counts.up} up  ${counts.down} down  ${counts.unknown} unknown  ${new Date(options.now).toISOString()}`,
    ...lines,
    ...(more > 0 ? [`... ${more} more, the ones down listed first (all of them: the dashboard or /api/targets)`] : []),
  ];
}

/** Redraws the table in place on a terminal every `everyMs`. */
export function liveTable(monitor: Monitor, out: NodeJS.WriteStream, everyMs = 500): () => void {
  const draw = (): void => {
    const lines = renderTable(monitor.snapshot(), { now: Date.now(), maxRows: (out.rows || 40) - 3, colour: true, width: out.columns || 160 });
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
  };
  out.write('\x1b[?25l\x1b[2J');
  draw();
  const timer = setInterval(draw, everyMs);
  return () => {
    clearInterval(timer);
    draw();
    out.write('\x1b[?25h');
  };
}

export function transitionLine(transition: Transition, target: TargetConfig): string {
  return JSON.stringify({
    type: 'transition',
    at: new Date(transition.at).toISOString(),
    target: transition.target,
    address: formatHostPort(target),
    labels: target.labels,
    from: transition.from,
    to: transition.to,
    reason: transition.reason,
    connectMs: transition.connectMs,
  });
}

export function resultLine(target: TargetConfig, observation: Observation): string {
  return JSON.stringify({
    type: 'result',
    at: new Date(observation.at).toISOString(),
    target: target.name,
    result: observation.result,
    reason: observation.reason,
    connectMs: observation.connectMs,
    errno: observation.errno,
  });
}

/** JSON lines on `out`: every transition, and every result when `results` is set. */
export function jsonLines(monitor: Monitor, out: Writable, results: boolean): () => void {
  const offs = [monitor.onTransition((transition, target) => out.write(`${transitionLine(transition, target)}\n`))];
  if (results) offs.push(monitor.onResult((target, observation) => out.write(`${resultLine(target, observation)}\n`)));
  return () => {
    for (const off of offs) off();
  };
}
