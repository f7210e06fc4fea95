/**
 * Component deadlines for process tests of the healthy path. The firmware fails a component whose check
 * misses its deadline (`timeoutMs`, default 100 ms), and a running sim firmware's clock follows real
 * time: a fresh process, its code not yet compiled, on a starved machine misses it with nothing wrong.
 * Measured on this 2-core machine at load average 15-19, even with the clock's catch-up firing overdue
 * timers one by one: 2 of 3 fresh `handcheck run` processes reported ambient or meter as timed out at
 * 100 ms on their first diagnosis. 1000 ms leaves ten times that deadline. Tests of the deadline itself
 * set their own.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const patientTimeoutMs = 1000;

let file: string | undefined;

/** The project's boards.json with every component's deadline at `patientTimeoutMs`, written once per process. */
export function patientBoardsFile(): string {
  if (file) return file;
  const document = JSON.parse(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8')) as { $schema?: string; boards: Array<{ components: Array<Record<string, unknown>> }> };
  for (const board of document.boards) for (const component of board.components) component.timeoutMs = patientTimeoutMs;
  delete document.$schema;
  const dir = mkdtempSync(join(tmpdir(), 'hc-patient-boards-'));
  file = join(dir, 'boards.json');
  writeFileSync(file, JSON.stringify(document, null, 2));
  return file;
}
