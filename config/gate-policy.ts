/**
 * Gate policies for code that builds a gate without a boards file (tests, firmware authors): the
 * same schema node and defaults as the `gate` object of a boards.json service, so there is one place
 * a default is written down.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import schema from '../boards.schema.json' with { type: 'json' };
import type { GatePolicy, GatePolicyInput } from './board-config.js';
import { BoardsSchemaError } from './boards.js';
import { schemaIssues } from './issues.js';

const validate = new Ajv2020({ allErrors: true, useDefaults: true, verbose: true, strict: true }).compile<GatePolicy>(schema.$defs.gate);

/** `input` with the schema's defaults filled in, validated and frozen; ERR_BOARDS_SCHEMA names each bad field. */
export function gatePolicy(input: GatePolicyInput = {}, source = 'gate policy'): Readonly<GatePolicy> {
  const policy = structuredClone(input);
  if (!validate(policy)) throw new BoardsSchemaError(source, schemaIssues(validate.errors ?? []));
  return Object.freeze(policy);
}
