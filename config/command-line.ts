/**
 * One definition per command of `handcheck`: its options as node:util parseArgs reads them, each
 * with the words `--help` prints, so the parser and the help cannot drift apart. The top-level usage
 * is made from the same definitions.
 */
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  default?: string | boolean;
  /** The placeholder in the help: `--db FILE`. */
  value?: string;
  /** The environment variable that gives the default, named in the help. */
  env?: string;
  help: string;
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  /** As typed: `monitor history`. */
  command: string;
  /** Positional arguments, as the usage line shows them; absent: the command takes none. */
  args?: string;
  /** One line, for the list of commands. */
  summary: string;
  /** More, under the usage line. */
  description?: string;
  options: O;
}

const helpOption: OptionSpec = { type: 'boolean', help: 'print this help and exit' };

function optionLabel(name: string, option: OptionSpec): string {
  return `--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`;
}

/** The text `handcheck COMMAND --help` prints. */
export function commandHelp(spec: CommandSpec): string {
  const options = Object.entries({ ...spec.options, help: helpOption });
  const labels = options.map(([name, option]) => optionLabel(name, option));
  const width = Math.min(30, Math.max(...labels.map((l) => l.length)));
  const lines = [`usage: handcheck ${spec.command}${options.length > 0 ? ' [options]' : ''}${spec.args ? ` ${spec.args}` : ''}`, '', spec.description ?? spec.summary, '', 'options:'];
  options.forEach(([, option], i) => {
    const notes = [
      option.multiple ? 'repeatable' : undefined,
      typeof option.default === 'string' && option.default !== '' ? `default ${option.default}` : undefined,
      option.env ? `env ${option.env}` : undefined,
    ].filter((n) => n !== undefined);
    const text = `${option.help}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
    const label = labels[i]!;
    lines.push(label.length > width ? `  ${label}\n  ${' '.repeat(width)}  ${text}` : `  ${label.padEnd(width)}  ${text}`);
  });
  return `${lines.join('\n')}\n`;
}

/** The list of commands, for `handcheck --help`. */
export function commandsHelp(specs: readonly CommandSpec[]): string {
  const width = Math.max(...specs.map((s) => s.command.length));
  return `usage: handcheck <command> [options]\n\ncommands:\n${specs.map((s) => `  ${s.command.padEnd(width)}  ${s.summary}`).join('\n')}\n\n'handcheck COMMAND --help' lists a command's options.\n`;
}

/**
 * Parses `argv` by the spec; with `--help` (or `-h`) before any `--`, prints the command's help and
 * returns undefined instead.
 */
export type ParsedCommand<O extends Record<string, OptionSpec>> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>>;

export function parseCommand<const O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  argv: string[],
  write: (text: string) => void = (text) => process.stdout.write(text),
): ParsedCommand<O> | undefined {
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h')) {
    write(commandHelp(spec));
    return undefined;
  }
  return parseArgs({ args: argv, options: spec.options, allowPositionals: spec.args !== undefined, strict: true });
}
