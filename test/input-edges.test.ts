/**
 * Input a deployer (or a broken disk) can hand the firmware: a boards file nested far too deep, a
 * device instead of a file, bytes that are not UTF-8. Each gets an error naming what is wrong, at
 * once, instead of a stack overflow, a read that never ends, or silently replaced characters.
 */
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoards, maxBoardsBytes, parseBoards } from '../config/boards.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hc-input-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('boards file input edges', () => {
  it('refuses a file nested 100,000 deep with ERR_BOARDS_JSON naming the limit, not a stack overflow', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(() => parseBoards(deep, 'deep.json')).toThrow(expect.objectContaining({ code: 'ERR_BOARDS_JSON', message: expect.stringContaining('nesting deeper than 64 levels') }));
  });

  it('refuses a device such as /dev/zero as not a regular file, without reading it', async () => {
    await expect(loadBoards('/dev/zero')).rejects.toMatchObject({ code: 'ERR_BOARDS_READ', message: expect.stringContaining('not a regular file (a character device)') });
  });

  it('refuses a file larger than it reads', async () => {
    const big = join(dir, 'big.json');
    await writeFile(big, Buffer.alloc(maxBoardsBytes + 10, 0x20));
    await expect(loadBoards(big)).rejects.toMatchObject({ code: 'ERR_BOARDS_READ', message: expect.stringContaining(`larger than ${maxBoardsBytes} bytes`) });
  });

  it('refuses bytes that are not UTF-8, naming the byte and its offset', async () => {
    const latin1 = join(dir, 'latin1.json');
    await writeFile(latin1, Buffer.concat([Buffer.from('{"boards": [{"name": "Caf'), Buffer.from([0xe9]), Buffer.from('"}]}')]));
    await expect(loadBoards(latin1)).rejects.toMatchObject({ code: 'ERR_BOARDS_READ', message: expect.stringContaining('not UTF-8: invalid byte 0xe9 at byte offset 25') });
    const cut = join(dir, 'cut.json');
    await writeFile(cut, Buffer.from([0x7b, 0xe2, 0x82]));
    await expect(loadBoards(cut)).rejects.toMatchObject({ code: 'ERR_BOARDS_READ', message: expect.stringContaining('invalid byte 0xe2 at byte offset 1') });
  });
});
