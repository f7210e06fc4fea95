/**
 * Judging readings against ranges: past `min`/`max` a quantity fails its component, past
 * `warnMin`/`warnMax` it degrades it. The board entry's ranges and, for SFP modules, the module's own
 * stored alarm and warning thresholds are both applied; the stricter judgement wins.
 */
import type { Range } from '../config/board-config.js';
import type { Reading } from '../hal/drivers/driver.js';

export type Health = 'ok' | 'degraded' | 'failed';

export interface Judgement {
  health: Health;
  /** One entry per quantity out of its range, for people: `temperatureC 91.2 > max 85`. */
  reasons: string[];
}

const rank: Record<Health, number> = { ok: 0, degraded: 1, failed: 2 };

export function worse(a: Health, b: Health): Health {
  return rank[a] >= rank[b] ? a : b;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

export function judge(reading: Reading, ranges: Readonly<Record<string, Range>> | undefined, source = ''): Judgement {
  const result: Judgement = { health: 'ok', reasons: [] };
  if (!ranges) return result;
  for (const [quantity, range] of Object.entries(ranges)) {
    const value = reading[quantity];
    if (typeof value !== 'number') continue;
    if (Number.isNaN(value)) {
      result.health = 'failed';
      result.reasons.push(`${quantity} is not a number`);
      continue;
    }
    let hit: [Health, string] | undefined;
    if (range.max !== undefined && value > range.max) hit = ['failed', `> max ${round(range.max)}`];
    else if (range.min !== undefined && value < range.min) hit = ['failed', `< min ${round(range.min)}`];
    else if (range.warnMax !== undefined && value > range.warnMax) hit = ['degraded', `> warnMax ${round(range.warnMax)}`];
    else if (range.warnMin !== undefined && value < range.warnMin) hit = ['degraded', `< warnMin ${round(range.warnMin)}`];
    if (hit) {
      result.health = worse(result.health, hit[0]);
      result.reasons.push(`${quantity} ${round(value)} ${hit[1]}${source ? ` (${source})` : ''}`);
    }
  }
  return result;
}
