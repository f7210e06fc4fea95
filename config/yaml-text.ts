/**
 * YAML text as Prometheus reads its file_sd target files (Go's yaml.v2, strict), made safe for a file
 * that anyone with write access to it, or a generator gone wrong, may fill:
 * - one document; a syntax error, a repeated key or a tag is named with its line and column;
 * - no tags at all (`!!binary`, `!foo`): Prometheus's Go decoder ignores a tag it does not know,
 *   this reader refuses it rather than guess what the writer meant;
 * - anchors, aliases and `<<` merge keys as yaml.v2 takes them, aliases bounded (a "billion laughs"
 *   file is refused) and nesting bounded as for JSON, checked before the document is composed: the
 *   composer of the `yaml` package runs out of memory, killing the process, on ten thousand nested `[`;
 * - every scalar is read as the text written (`rack: 01` is "01", `on: yes` is "yes"), as yaml.v2
 *   decodes a scalar into a label's string; only an empty value, `~` and `null` are null.
 * Lexing and parsing yield to the event loop every few milliseconds (a megabyte takes about a second
 * on a loaded Pi-class CPU), so a large file does not stall what else the process times.
 */
import { type CST, Composer, type Document, LineCounter, Lexer, Parser, type YAMLError, visit } from 'yaml';
import { maxJsonDepth } from './json-text.js';

/** One thing wrong with the text: where (line and column from 1) and what. */
export interface YamlProblem {
  line: number;
  column: number;
  detail: string;
}

export type YamlRead =
  | { ok: true; value: unknown; lineOf: (pointer: string) => number | undefined }
  | { ok: false; problems: YamlProblem[] };

/** Aliases one document may resolve: shared label sets need a few, an expansion attack needs thousands. */
export const maxYamlAliases = 100;

/** The longest the event loop waits on the reader between two yields, ms. */
const sliceMs = 5;

const options = {
  schema: 'core',
  merge: true,
  resolveKnownTags: false,
  stringKeys: true,
  uniqueKeys: true,
  strict: true,
  prettyErrors: false,
  logLevel: 'error',
} as const;

/** Problems about what the text says rather than how: each is named, not only the first. */
const contentCodes = new Set(['DUPLICATE_KEY', 'TAG_RESOLVE_FAILED', 'NON_STRING_KEY']);

/** A mapping key as written at `offset`: quoted, or plain up to its colon. */
const keyAt = /"(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^\s:,{}[\]]+/y;

function describe(error: YAMLError, text: string): string {
  // The package's messages end with "at line L, column C" and an excerpt, which the problem carries apart.
  const message = error.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
  switch (error.code) {
    case 'DUPLICATE_KEY': {
      keyAt.lastIndex = error.pos[0];
      const key = keyAt.exec(text)?.[0] ?? '';
      return `key ${key} appears twice in one mapping (YAML keys are unique; the second would silently win)`;
    }
    case 'TAG_RESOLVE_FAILED':
      return `${message} (tags are not read: write the value plainly or quoted)`;
    case 'MULTIPLE_DOCS':
      return 'a second document: a file of target groups is one YAML document';
    default:
      return message;
  }
}

/** The deepest nesting of collections in the parsed tokens, counted without recursion and given up past `limit`. */
function deeperThan(tokens: readonly CST.Token[], limit: number): number | undefined {
  const stack: Array<[CST.Token, number]> = tokens.map((token) => [token, 0]);
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [token, depth] = next;
    const children: Array<CST.Token | null | undefined> = [];
    if (token.type === 'document') children.push(token.value);
    else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      if (depth + 1 > limit) return token.offset;
      for (const item of token.items) children.push(item.key, item.value);
    }
    for (const child of children) if (child) stack.push([child, token.type === 'document' ? depth : depth + 1]);
  }
  return undefined;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Reads YAML text as a file_sd file is read; the problems are sorted by position, a syntax error alone. */
export async function readYaml(text: string): Promise<YamlRead> {
  // Editors on Windows save a byte order mark, on which the package's lexer stumbles.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = new LineCounter();
  const at = (offset: number): { line: number; column: number } => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  const parser = new Parser(lines.addNewLine);
  // Parser.parse() counts the first line itself; driven lexeme by lexeme, it is ours to count.
  lines.addNewLine(0);
  const tokens: CST.Token[] = [];
  let since = performance.now();
  let count = 0;
  for (const lexeme of new Lexer().lex(body)) {
    for (const token of parser.next(lexeme)) tokens.push(token);
    // The parser's stack holds the document, the collections open and a scalar: past that, stop
    // now rather than parse a megabyte of brackets to refuse it after.
    const open = parser.stack.at(-1);
    if (open && parser.stack.length > maxJsonDepth + 2) return { ok: false, problems: [{ ...at(open.offset), detail: `nesting deeper than ${maxJsonDepth} levels` }] };
    if (++count % 1024 === 0 && performance.now() - since > sliceMs) {
      await yieldToLoop();
      since = performance.now();
    }
  }
  for (const token of parser.end()) tokens.push(token);
  const tooDeep = deeperThan(tokens, maxJsonDepth);
  if (tooDeep !== undefined) return { ok: false, problems: [{ ...at(tooDeep), detail: `nesting deeper than ${maxJsonDepth} levels` }] };

  const documents: Document.Parsed[] = [...new Composer(options).compose(tokens, true, body.length)];
  const document = documents[0]!;
  const errors = [...document.errors, ...document.warnings];
  if (documents.length > 1) errors.push({ code: 'MULTIPLE_DOCS', message: '', pos: documents[1]!.range.slice(0, 2) } as unknown as YAMLError);
  if (errors.length > 0) {
    const problems = errors.sort((a, b) => a.pos[0] - b.pos[0]).map((error) => ({ ...at(error.pos[0]), detail: describe(error, body), code: error.code }));
    const syntax = problems.find((problem) => !contentCodes.has(problem.code));
    return { ok: false, problems: (syntax ? [syntax] : problems).map(({ code: _, ...problem }) => problem) };
  }

  visit(document, {
    Scalar(_key, node) {
      if (node.value !== null && typeof node.value !== 'string') node.value = node.source;
    },
  });
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: maxYamlAliases });
  } catch (err) {
    // The package throws a ReferenceError when the aliases expand past the count.
    return { ok: false, problems: [{ line: 1, column: 1, detail: `${(err as Error).message} (at most ${maxYamlAliases} aliases are resolved)` }] };
  }
  const lineOf = (pointer: string): number | undefined => {
    const path = pointer === '' ? [] : pointer.slice(1).split('/').map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? document.contents : document.getIn(path.slice(0, n).map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment)), true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return at(range[0]).line;
    }
    return undefined;
  };
  return { ok: true, value, lineOf };
}
