/**
 * Every number a boards file can set has a maximum in boards.schema.json, and every time in ms fits a
 * Node timer: past 2^31-1 ms Node fires after 1 ms instead (TimeoutOverflowWarning), so a recheck of
 * 3,000,000,000 ms used to run every millisecond.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gatePolicy } from '../config/gate-policy.js';

const schema = JSON.parse(readFileSync(new URL('../boards.schema.json', import.meta.url), 'utf8')) as unknown;

function numericNodes(node: unknown, path: string, out: Array<{ path: string; node: Record<string, unknown> }>): typeof out {
  if (Array.isArray(node)) node.forEach((child, i) => numericNodes(child, `${path}[${i}]`, out));
  else if (node !== null && typeof node === 'object') {
    const record = node as Record<string, unknown>;
    const types = ([] as unknown[]).concat(record.type ?? []);
    if (types.includes('number') || types.includes('integer')) out.push({ path, node: record });
    for (const [key, child] of Object.entries(record)) numericNodes(child, `${path}/${key}`, out);
  }
  return out;
}

describe('bounds of boards.schema.json', () => {
  it('gives every numeric field a maximum, and times in ms one a Node timer can wait', () => {
    const nodes = numericNodes(schema, '', []);
    expect(nodes.length).toBeGreaterThan(10);
    expect(nodes.filter(({ node }) => typeof node.maximum !== 'number').map(({ path }) => path)).toEqual([]);
    const times = nodes.filter(({ path }) => /Ms$/.test(path));
    expect(times.filter(({ node }) => (node.maximum as number) > 2 ** 31 - 1).map(({ path }) => path)).toEqual([]);
  });

  it('refuses recheckMs 3000000000, naming the range', () => {
    expect(() => gatePolicy({ recheckMs: 3_000_000_000 })).toThrow(expect.objectContaining({ code: 'ERR_BOARDS_SCHEMA', message: expect.stringContaining('0 (off) to 3600000 ms') }));
  });

  it('turns TCP keepalive on by default', () => {
    expect(gatePolicy({}).keepAliveMs).toBe(60_000);
  });
});
