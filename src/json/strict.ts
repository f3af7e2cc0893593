/**
 * Strict JSON (RFC 8259) for configuration that decides trust: a duplicate key is an error (JSON.parse
 * silently keeps the last one, so `{"requireLogInclusion": true, "requireLogInclusion": false}` would
 * quietly switch a protection off), nesting is bounded, and objects have no prototype (a key named
 * `__proto__` or `constructor` is a key like any other).
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    /** Path of the object holding a duplicate key, as in error messages (`signers[0]`). */
    readonly path?: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;

/** `signers[0].keyless` style path of a value. */
export function pathString(parts: readonly (string | number)[]): string {
  let s = '';
  for (const p of parts) s += typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? (s ? `.${p}` : p) : `[${JSON.stringify(p)}]`;
  return s;
}

export function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const path: (string | number)[] = [];
  const fail = (msg: string): never => {
    const line = text.slice(0, i).split('\n').length;
    throw new JsonSyntaxError(`${msg} at line ${line} (byte ${i})`, i);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    let end = i;
    for (;; end++) {
      if (end >= text.length) { i = end; fail('unterminated string'); }
      const c = text.charCodeAt(end);
      if (c === 0x22) break;
      if (c === 0x5c) end++;
      else if (c < 0x20) { i = end; fail('control character in string'); }
    }
    i = end + 1;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      i = start;
      return fail('invalid string escape');
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = Object.create(null) as JsonObject;
      ws();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key string');
        const keyAt = i;
        const key = str();
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          i = keyAt;
          throw new JsonSyntaxError(`duplicate key ${JSON.stringify(key)}${path.length ? ` in ${pathString(path)}` : ''} at line ${text.slice(0, i).split('\n').length}`, i, pathString(path));
        }
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        path.push(key);
        obj[key] = value(depth + 1);
        path.pop();
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        path.push(arr.length);
        arr.push(value(depth + 1));
        path.pop();
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) return fail(c === undefined ? 'unexpected end of input' : `unexpected character ${JSON.stringify(c)}`);
    i += m[0].length;
    if (m[0] === 'true') return true;
    if (m[0] === 'false') return false;
    if (m[0] === 'null') return null;
    const n = Number(m[0]);
    if (!Number.isFinite(n)) fail('number out of range');
    return n;
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('trailing characters after the JSON value');
  return v;
}
