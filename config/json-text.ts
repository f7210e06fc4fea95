/**
 * Strict JSON text as people edit it: positions for syntax errors, repeated keys found (JSON.parse
 * keeps only the last), nesting bounded. Shared by every configuration file handcheck reads.
 */
import type { ConfigIssue } from './issues.js';

/** A JSON object: not null, not an array (both of which typeof calls 'object'). */
export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON pointer escaping (RFC 6901). */
export function pointer(parent: string, key: string | number): string {
  return `${parent}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

class JsonSyntax extends Error {
  constructor(
    readonly detail: string,
    readonly at: number,
  ) {
    super(detail);
  }
}

/** Where strict JSON text first goes wrong, for a person editing it: line and column from 1. */
export interface JsonSyntaxProblem {
  line: number;
  column: number;
  detail: string;
}

export type JsonScan = { ok: true; duplicates: ConfigIssue[] } | { ok: false; syntax: JsonSyntaxProblem };

/**
 * Deeper than any configuration a person writes, and shallow enough that a hostile file cannot
 * overflow the stack of this recursive scanner (or of JSON.parse after it).
 */
export const maxJsonDepth = 64;

/**
 * Checks the text is strict JSON and returns the keys repeated within one object, which JSON.parse
 * would silently collapse to the last. JSON.parse on Node 20 often gives no position for an error,
 * and a position is what a person editing the file needs.
 */
export function scanJson(text: string): JsonScan {
  const duplicates: ConfigIssue[] = [];
  let pos = 0;
  let depth = 0;

  const describe = (at: number): string => {
    if (at >= text.length) return 'unexpected end of file';
    const hint = text.startsWith('//', at) || text.startsWith('/*', at) ? ' (JSON has no comments)' : '';
    return `unexpected character ${JSON.stringify(text[at])}${hint}`;
  };
  const fail = (detail: string, at = pos): never => {
    throw new JsonSyntax(detail, at);
  };
  const skipSpace = (): void => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos] as string)) pos++;
  };
  const expect = (char: string, what: string): void => {
    if (text[pos] !== char) fail(`${describe(pos)}, expected ${what}`);
    pos++;
  };
  const string = (): string => {
    const start = pos;
    expect('"', 'a string');
    for (;;) {
      const char = text[pos];
      if (char === undefined) fail('unterminated string', start);
      else if (char === '"') break;
      else if (char === '\\') {
        const escape = text[pos + 1];
        if (escape === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail('invalid \\u escape in string');
          pos += 6;
        } else if (escape !== undefined && '"\\/bfnrt'.includes(escape)) pos += 2;
        else fail('invalid escape in string');
      } else if (char < ' ') fail('control character in string (newlines must be written \\n)');
      else pos++;
    }
    pos++;
    return JSON.parse(text.slice(start, pos)) as string;
  };
  const number = (): void => {
    const match = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    match.lastIndex = pos;
    if (!match.exec(text)) fail(`${describe(pos)}, expected a value`);
    pos = match.lastIndex;
    if (/[0-9A-Za-z.]/.test(text[pos] ?? '')) fail(`invalid number (JSON has no hex, octal or leading zeros)`);
  };
  const nested = (path: string, body: (path: string) => void): void => {
    if (++depth > maxJsonDepth) fail(`nesting deeper than ${maxJsonDepth} levels`);
    body(path);
    depth--;
  };
  const value = (path: string): void => {
    skipSpace();
    const char = text[pos];
    if (char === '{') nested(path, object);
    else if (char === '[') nested(path, array);
    else if (char === '"') string();
    else if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) number();
    else {
      const word = ['true', 'false', 'null'].find((literal) => text.startsWith(literal, pos));
      if (!word) fail(`${describe(pos)}, expected a value`);
      else pos += word.length;
    }
  };
  const object = (path: string): void => {
    pos++;
    const seen = new Set<string>();
    skipSpace();
    if (text[pos] === '}') {
      pos++;
      return;
    }
    for (;;) {
      skipSpace();
      if (text[pos] === '}') fail("unexpected '}' after ',' (JSON allows no trailing comma)");
      if (text[pos] !== '"') fail(`${describe(pos)}, expected a double-quoted key`);
      const keyAt = pos;
      const key = string();
      if (seen.has(key)) {
        duplicates.push({ path: pointer(path, key), message: `key ${JSON.stringify(key)} appears twice in one object (${where(text, keyAt)}); JSON would keep only the last` });
      }
      seen.add(key);
      skipSpace();
      expect(':', `':' after key ${JSON.stringify(key)}`);
      value(pointer(path, key));
      skipSpace();
      if (text[pos] === '}') {
        pos++;
        return;
      }
      expect(',', "',' or '}' after a value in an object");
    }
  };
  const array = (path: string): void => {
    pos++;
    skipSpace();
    if (text[pos] === ']') {
      pos++;
      return;
    }
    for (let index = 0; ; index++) {
      skipSpace();
      if (index > 0 && text[pos] === ']') fail("unexpected ']' after ',' (JSON allows no trailing comma)");
      value(pointer(path, index));
      skipSpace();
      if (text[pos] === ']') {
        pos++;
        return;
      }
      expect(',', "',' or ']' after a value in an array");
    }
  };

  try {
    value('');
    skipSpace();
    if (pos < text.length) fail(`${describe(pos)} after the end of the document`);
  } catch (err) {
    if (!(err instanceof JsonSyntax)) throw err;
    return { ok: false, syntax: { ...lineAndColumn(text, err.at), detail: err.detail } };
  }
  return { ok: true, duplicates };
}

function lineAndColumn(text: string, at: number): { line: number; column: number } {
  const before = text.slice(0, at);
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: at - lineStart + 1 };
}

function where(text: string, at: number): string {
  const { line, column } = lineAndColumn(text, at);
  return `line ${line}, column ${column}`;
}
