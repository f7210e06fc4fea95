/**
 * Keeps docs/errors.md complete and current: every `ERR_*` string literal in the source folders must
 * have a row there, and every row must name a code the source still uses.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const sourceDirs = ['config', 'hal', 'sim', 'firmware', 'app', 'monitor'].filter((dir) => existsSync(join(root, dir)));
const sourceExtensions = /\.(?:ts|mts|cts|js|mjs|cjs)$/;
/** A quoted code; backticks are left out so that prose in doc comments does not count as use. */
const codeLiteral = /(['"])(ERR_[A-Z0-9_]+)\1/g;

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(path);
      return sourceExtensions.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
    }),
  );
  return nested.flat();
}

interface Use {
  code: string;
  where: string;
}

async function scanSources(): Promise<{ uses: Use[]; classes: Set<string> }> {
  const uses: Use[] = [];
  const classes = new Set<string>();
  const files = (await Promise.all(sourceDirs.map((dir) => sourceFiles(join(root, dir))))).flat();
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    for (const match of text.matchAll(codeLiteral)) {
      const line = text.slice(0, match.index).split('\n').length;
      uses.push({ code: match[2] as string, where: `${relative(root, file)}:${line}` });
    }
    for (const match of text.matchAll(/\bclass\s+([A-Za-z0-9_]+)/g)) classes.add(match[1] as string);
  }
  return { uses, classes };
}

interface Row {
  code: string;
  classCell: string;
  line: number;
}

async function catalogue(): Promise<Row[]> {
  const text = await readFile(join(root, 'docs/errors.md'), 'utf8');
  const rows: Row[] = [];
  text.split('\n').forEach((line, i) => {
    const cells = line.split('|').map((cell) => cell.trim());
    // A table row is `| code | class | ... |`: cells[0] is the empty text before the first bar.
    const code = /^`(ERR_[A-Z0-9_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (line.startsWith('|') && code) rows.push({ code, classCell: cells[2] ?? '', line: i + 1 });
  });
  return rows;
}

describe('docs/errors.md', () => {
  it('scans at least the HAL, and finds its codes', async () => {
    const { uses } = await scanSources();
    expect(sourceDirs).toContain('hal');
    expect(uses.map((use) => use.code)).toContain('ERR_HAL_NACK');
    expect(uses.map((use) => use.code)).toContain('ERR_BOARDS_SCHEMA');
  });

  it('documents every ERR_* code the source uses', async () => {
    const { uses } = await scanSources();
    const documented = new Set((await catalogue()).map((row) => row.code));
    const missing = new Map<string, string[]>();
    for (const use of uses) {
      if (!documented.has(use.code)) missing.set(use.code, [...(missing.get(use.code) ?? []), use.where]);
    }
    const report = [...missing].map(([code, where]) => `${code} (used at ${where.join(', ')})`);
    expect(report, `codes missing from docs/errors.md:\n${report.join('\n')}`).toEqual([]);
  });

  it('documents no code the source no longer uses', async () => {
    const used = new Set((await scanSources()).uses.map((use) => use.code));
    const stale = (await catalogue()).filter((row) => !used.has(row.code)).map((row) => `${row.code} (docs/errors.md:${row.line})`);
    expect(stale, `documented codes no source uses:\n${stale.join('\n')}`).toEqual([]);
  });

  it('documents each code once', async () => {
    const rows = await catalogue();
    const seen = new Map<string, number>();
    const twice = rows.filter((row) => seen.has(row.code) || !seen.set(row.code, row.line)).map((row) => `${row.code} (lines ${seen.get(row.code)} and ${row.line})`);
    expect(twice).toEqual([]);
  });

  it('names error classes that exist', async () => {
    const { classes } = await scanSources();
    const named = (await catalogue()).flatMap((row) => [...row.classCell.matchAll(/`([A-Za-z0-9_]+)`/g)].map((match) => ({ name: match[1] as string, row })));
    expect(named.length).toBeGreaterThan(0);
    const unknown = named.filter(({ name }) => !classes.has(name)).map(({ name, row }) => `${name} (docs/errors.md:${row.line})`);
    expect(unknown, `classes named in docs/errors.md that no source declares:\n${unknown.join('\n')}`).toEqual([]);
  });
});
