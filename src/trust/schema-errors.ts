/**
 * Ajv errors (from the generated validators) as messages a policy author can act on, each naming the
 * field path: `signers[0].plan: unknown field`, `requireLogInclusion: must be a boolean (got the string "true")`.
 */
import { pathString, type JsonValue } from '../json/strict.js';

export interface SchemaError {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  propertyName?: string;
}

function parts(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((p) => {
    const s = p.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^(0|[1-9]\d*)$/.test(s) ? Number(s) : s;
  });
}

function valueAt(root: JsonValue, path: (string | number)[]): JsonValue | undefined {
  let v: JsonValue | undefined = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, JsonValue>)[p];
  }
  return v;
}

function shown(v: JsonValue | undefined): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

const ARTICLE: Record<string, string> = { boolean: 'a boolean', string: 'a string', integer: 'an integer', number: 'a number', array: 'an array', object: 'an object' };

function one(e: SchemaError, root: JsonValue): string {
  const at = parts(e.instancePath);
  const here = pathString(at) || '(top level)';
  const child = (name: unknown) => pathString([...at, String(name)]);
  switch (e.keyword) {
    case 'additionalProperties':
      return `${child(e.params.additionalProperty)}: unknown field`;
    case 'required':
      return `${child(e.params.missingProperty)}: missing required field`;
    case 'type':
      return `${here}: must be ${ARTICLE[String(e.params.type)] ?? e.params.type} (got ${shown(valueAt(root, at))})`;
    case 'const':
      return `${here}: must be ${JSON.stringify(e.params.allowedValue)} (got ${shown(valueAt(root, at))})`;
    case 'oneOf':
      return `${here}: give exactly one of "key" (a public key or certificate) or "keyless" {issuer, subject}`;
    case 'minItems':
      return `${here}: must not be empty`;
    case 'maxItems':
      return `${here}: more than ${e.params.limit} items`;
    case 'minLength':
      return `${here}: must not be empty`;
    case 'maxLength':
      return `${here}: longer than ${e.params.limit} characters`;
    case 'minimum':
    case 'maximum':
      return `${here}: must be ${e.params.comparison} ${e.params.limit} (got ${shown(valueAt(root, at))})`;
    case 'propertyNames':
      return `${here}: invalid name ${JSON.stringify(e.params.propertyName)}`;
    case 'pattern': {
      const v = valueAt(root, at);
      if (e.schemaPath.includes('/sha256/')) {
        const bare = typeof v === 'string' ? v.replace(/^sha256:/, '') : '';
        const short = /^[0-9a-fA-F]{8,63}$/.test(bare);
        return `${here}: not a full SHA-256 (64 hex digits, optional "sha256:")${short ? `; it has ${bare.length} digits: use the full id, as \`bpfseal verify --json\` prints it` : ` (got ${shown(v)})`}`;
      }
      return `${here}: invalid value ${shown(v)} (control characters or '/' are not allowed here)`;
    }
    default:
      return `${here}: ${e.message ?? e.keyword}`;
  }
}

/** All errors, most specific first, without the branch noise of oneOf; at most eight. */
export function describeSchemaErrors(errors: readonly SchemaError[], root: JsonValue): string {
  const oneOfAt = new Set(errors.filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath));
  const kept = errors.filter((e) => !(e.schemaPath.includes('/oneOf/') && oneOfAt.has(e.instancePath)) && e.keyword !== 'if');
  // propertyNames reports each failing name twice (the sub-keyword and itself): keep one.
  const msgs = [...new Set(kept.filter((e) => !(e.propertyName !== undefined && e.keyword !== 'propertyNames')).map((e) => one(e, root)))];
  return msgs.length > 8 ? `${msgs.slice(0, 8).join('; ')}; and ${msgs.length - 8} more` : msgs.join('; ');
}
