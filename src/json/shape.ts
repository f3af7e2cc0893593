/**
 * Shape checks for signed JSON payloads (in-toto statements: attest/statement.ts,
 * preflight/statement.ts): strict JSON (no duplicate keys), then exact field sets, each failure an
 * STATEMENT_INVALID input error whose message names the field.
 */
import { InputError } from '../errors.js';
import { parseStrictJson, type JsonValue } from './strict.js';

export interface ShapeChecker {
  /** The payload, parsed as strict JSON. */
  value: JsonValue;
  bad(why: string): InputError;
  /** `x` is an object with every key of `keys`, and no key outside `keys` and `optional`. */
  obj(x: unknown, what: string, keys: string[], optional?: string[]): Record<string, unknown>;
}

/** Parse `payload` for a shape check; `noun` names it in messages ("the signed statement ..."). */
export function shapeChecker(payload: Buffer, noun: string): ShapeChecker {
  let value: JsonValue;
  try {
    value = parseStrictJson(payload.toString('utf8'));
  } catch (e) {
    throw new InputError('STATEMENT_INVALID', `the signed payload is not strict JSON (${(e as Error).message})`);
  }
  const bad = (why: string) => new InputError('STATEMENT_INVALID', `${noun} ${why}`);
  const obj = (x: unknown, what: string, keys: string[], optional: string[] = []): Record<string, unknown> => {
    if (!x || typeof x !== 'object' || Array.isArray(x)) throw bad(`${what} is not an object`);
    const o = x as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keys.includes(k) && !optional.includes(k)) throw bad(`${what} has an unknown field '${k}'`);
    for (const k of keys) if (!(k in o)) throw bad(`${what} lacks '${k}'`);
    return o;
  };
  return { value, bad, obj };
}
