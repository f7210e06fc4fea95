/**
 * The README is part of the product: its quick start must name commands that exist, and its register
 * map must be the one the firmware serves.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quantityMap } from '../firmware/modbus-service.js';
import { parseBoards, selectBoard } from '../config/boards.js';
import { componentKinds } from '../config/component-kinds.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const boards = parseBoards(readFileSync(new URL('../boards.json', import.meta.url), 'utf8'), 'boards.json');

describe('README', () => {
  it('quick start is two commands, both npm scripts that exist', () => {
    const block = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = block.trim().split('\n').map((line) => line.replace(/#.*$/, '').trim());
    expect(commands).toEqual(['npm install && npm start', 'npm test']);
    expect(pkg.scripts.start).toBeDefined();
    expect(pkg.scripts.test).toBe('vitest run');
  });

  it('register map of the simulated appliance matches what the firmware serves', () => {
    const config = selectBoard(boards, 'sim-appliance');
    const rows = [...readme.matchAll(/^\| IR (\d+)-(\d+) \| (\S+) ([\w, ]+) \|$/gm)].filter((m) => Number(m[1]) >= 100);
    const documented = rows.flatMap((m) => m[4]!.split(', ').map((quantity, i) => ({ register: Number(m[1]) + 2 * i, component: m[3]!, quantity })));
    expect(documented).toEqual(quantityMap(config));
    const states = /^\| IR 0-(\d+) \| states of ([\w, -]+) \|$/m.exec(readme);
    expect(states?.[2]?.split(', ')).toEqual(config.components.map((c) => c.id));
  });

  it('lists the quantities of every component kind that reads any, in register order', () => {
    const paragraph = /Quantities per component kind, in register order: ([^]*?)\.\n/.exec(readme)?.[1] ?? '';
    const documented: Record<string, string[]> = {};
    for (const entry of paragraph.replace(/\n/g, ' ').split('; ')) {
      const match = /^(.+?) `([^`]+)`$/.exec(entry.trim());
      for (const kind of match?.[1]?.split(' and ') ?? []) documented[kind] = match![2]!.split(', ');
    }
    const expected = Object.fromEntries(
      Object.entries(componentKinds)
        .filter(([, spec]) => spec.quantities.length > 0)
        .map(([kind, spec]) => [kind, [...spec.quantities]]),
    );
    expect(documented).toEqual(expected);
  });
});
