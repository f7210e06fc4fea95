/**
 * The rooms of the tree and the one direction their imports run (README, "Layout"): config <- hal <-
 * sim, hal <- firmware <- app, config <- monitor. app/ is the only room that knows every other; lib/,
 * the package's entry, re-exports from the rooms below it and is imported by none.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');

const allowed: Record<string, readonly string[]> = {
  config: [],
  hal: ['config'],
  sim: ['config', 'hal'],
  firmware: ['config', 'hal'],
  monitor: ['config'],
  app: ['config', 'hal', 'sim', 'firmware', 'monitor'],
  // The package's entry (import 'handcheck'): re-exports a chosen few names from the rooms below it.
  lib: ['config', 'hal', 'sim', 'firmware', 'app'],
};

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/** Every relative module a file imports, statically or dynamically, as a path from the root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((match) => match[1]!);
  return specifiers.map((specifier) => relative(root, resolve(dirname(join(root, file)), specifier)));
}

function roomOf(path: string): string {
  return path.split('/')[0]!;
}

describe('layering', () => {
  for (const [room, may] of Object.entries(allowed)) {
    it(`${room}/ imports only ${may.length > 0 ? may.map((r) => `${r}/`).join(', ') : 'itself'}`, () => {
      const upward = sources(room).flatMap((file) =>
        importsOf(file)
          .filter((target) => roomOf(target) !== room && !may.includes(roomOf(target)) && target !== 'boards.schema.json')
          .map((target) => `${file} -> ${target}`),
      );
      expect(upward).toEqual([]);
    });
  }

  it('nothing imports lib/, the public entry: it only faces outward', () => {
    const inward = Object.keys(allowed)
      .filter((room) => room !== 'lib')
      .flatMap((room) => sources(room).flatMap((file) => importsOf(file).filter((target) => roomOf(target) === 'lib').map((target) => `${file} -> ${target}`)));
    expect(inward).toEqual([]);
  });

  it('finds the imports it judges (a file of each room imports something)', () => {
    for (const room of ['hal', 'sim', 'firmware', 'monitor', 'app', 'lib']) {
      expect(sources(room).some((file) => importsOf(file).length > 0), room).toBe(true);
    }
    expect(importsOf('app/cli.ts')).toContain('monitor/probe.js');
  });
});
