/**
 * What goes wrong in a configuration file, said the same way for every file handcheck reads
 * (`boards.json`, the monitor's config): a JSON pointer and a sentence.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import { pointer } from './json-text.js';

/** One problem in a configuration file: where (a JSON pointer, `/boards/1/components/3/address`) and what. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

export function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

interface SchemaNode {
  title?: string;
  description?: string;
  properties?: Record<string, unknown>;
}

function plainValue(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * Turns Ajv's errors into one issue per problem, each naming its JSON path. Needs Ajv's `verbose`
 * option (the offending value and its schema node, whose `title` and `description` make the
 * message). `showValue` formats an offending value for its path (hex for addresses, say).
 */
export function schemaIssues(errors: readonly ErrorObject[], showValue: (value: unknown, path: string) => string = plainValue): ConfigIssue[] {
  // An anyOf that failed explains itself better than each of its branches' complaints.
  const anyOfs = errors.filter((error) => error.keyword === 'anyOf');
  const issues: ConfigIssue[] = [];
  for (const error of errors) {
    // The discriminator repeats what the enum on `kind` (or `required`) already says, and a failed
    // propertyNames is reported through the errors of the key it refused, which name the rule.
    if (error.keyword === 'discriminator' || error.keyword === 'propertyNames') continue;
    if (anyOfs.some((any) => any !== error && error.schemaPath.startsWith(`${any.schemaPath}/`) && error.instancePath === any.instancePath)) continue;
    const issue = schemaIssue(error, showValue);
    if (!issues.some((seen) => seen.path === issue.path && seen.message === issue.message)) issues.push(issue);
  }
  return issues;
}

function schemaIssue(error: ErrorObject, showValue: (value: unknown, path: string) => string): ConfigIssue {
  const node = (error.parentSchema ?? {}) as SchemaNode;
  const params = error.params as Record<string, unknown>;
  // Errors about a key itself (propertyNames) come with the object's path and the key beside it.
  const path = error.propertyName === undefined ? error.instancePath : pointer(error.instancePath, error.propertyName);
  const within = node.title ? ` in ${node.title}` : '';
  const mustBe = (fallback: string): string =>
    `${showValue(error.data, path)} is invalid: must be ${node.description ?? fallback}`;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(node.properties ?? {});
      return {
        path: pointer(path, key),
        message: `unknown key ${JSON.stringify(key)}${within} (allowed: ${allowed.length > 0 ? allowed.join(', ') : 'none'})`,
      };
    }
    case 'required': {
      const key = String(params.missingProperty);
      return { path: pointer(path, key), message: `missing required key ${JSON.stringify(key)}${within}` };
    }
    case 'type':
      return { path, message: `must be ${String(params.type)}, got ${showValue(error.data, path)}` };
    case 'enum':
      return {
        path,
        message: `${showValue(error.data, path)} is not one of ${(params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}`,
      };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, message: mustBe(`${String(params.comparison)} ${String(params.limit)}`) };
    case 'pattern':
    case 'anyOf':
      return { path, message: mustBe(String(error.message)) };
    case 'minItems':
      return { path, message: `must have at least ${String(params.limit)} ${params.limit === 1 ? 'entry' : 'entries'}` };
    case 'minProperties':
      return { path, message: `must have at least ${count(Number(params.limit), 'key')}${within}` };
    case 'uniqueItems':
      return { path: pointer(path, Number(params.i)), message: `repeats entry ${String(params.j)} (${showValue((error.data as unknown[])[Number(params.i)], path)})` };
    default:
      return { path, message: String(error.message) };
  }
}
