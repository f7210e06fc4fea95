/**
 * The package's own root (where package.json is), found by walking up from this module so that it
 * is the same from the sources, from dist/ and from a flashed tree.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function find(from: string): string {
  let dir = from;
  while (!existsSync(resolve(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const packageRoot = find(dirname(fileURLToPath(import.meta.url)));
