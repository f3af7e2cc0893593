// Seeded, structure-aware mutations of ELF objects for the fuzz tests. Plain JS so that both the vitest
// files and the worker thread (test/helpers/fuzz-worker.mjs, which runs without a TS loader) can use it.
// Every mutation is a list of ops ({op:'flip',at,xor} | {op:'u32',at,value} | {op:'u64',at,value} |
// {op:'truncate',len}); applyOps(original, ops) reproduces it exactly.

/** mulberry32: a small, well-mixed 32-bit PRNG. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Independent seed for iteration i, so one iteration can be replayed alone. */
export function iterSeed(seed, i) {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Byte ranges worth mutating: ELF header, section header table, and each section's data. */
export function regions(buf) {
  const out = [{ name: 'whole file', start: 0, len: buf.length }, { name: 'ELF header', start: 0, len: Math.min(64, buf.length) }];
  if (buf.length < 64 || buf[5] !== 1) return out;
  const shoff = Number(buf.readBigUInt64LE(40));
  const shnum = buf.readUInt16LE(60);
  const shstrndx = buf.readUInt16LE(62);
  if (shoff + shnum * 64 > buf.length) return out;
  out.push({ name: 'section headers', start: shoff, len: shnum * 64 });
  const hdr = (i) => shoff + i * 64;
  const strOff = Number(buf.readBigUInt64LE(hdr(shstrndx) + 24));
  for (let i = 1; i < shnum; i++) {
    const h = hdr(i);
    const type = buf.readUInt32LE(h + 4);
    const off = Number(buf.readBigUInt64LE(h + 24));
    const size = Number(buf.readBigUInt64LE(h + 32));
    const nameOff = strOff + buf.readUInt32LE(h);
    const name = buf.toString('latin1', nameOff, buf.indexOf(0, nameOff));
    if (name.startsWith('.debug') || name.startsWith('.rel.debug')) continue; // ignored by the reader: low value
    if (type !== 8 && size > 0) out.push({ name, start: off, len: size, header: h });
    else out.push({ name: `${name} header`, start: h, len: 64, header: h });
  }
  return out;
}

const U32S = [0, 1, 2, 3, 4, 7, 8, 12, 16, 23, 24, 64, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];
const U64S = [0n, 1n, 8n, 24n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn];

export function makeMutation(orig, regionList, rnd) {
  const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
  const ops = [];
  const nops = 1 + Math.floor(rnd() * 3);
  for (let k = 0; k < nops; k++) {
    const r = rnd() < 0.2 ? regionList[0] : pick(regionList);
    const at = r.start + Math.floor(rnd() * Math.max(1, r.len));
    const kind = rnd();
    if (kind < 0.40) {
      ops.push({ op: 'flip', at, xor: 1 + Math.floor(rnd() * 255) });
    } else if (kind < 0.50) {
      ops.push({ op: 'flip', at, xor: 1 << Math.floor(rnd() * 8) });
    } else if (kind < 0.75) {
      const a = r.header !== undefined && rnd() < 0.5 ? r.header + 4 * Math.floor(rnd() * 16) : at & ~3;
      const v = rnd() < 0.6 ? pick(U32S) : rnd() < 0.5 ? Math.floor(rnd() * 4294967296) : (orig.length + Math.floor(rnd() * 64) - 32) >>> 0;
      ops.push({ op: 'u32', at: a, value: v });
    } else if (kind < 0.90) {
      const a = r.header !== undefined ? r.header + 8 * (1 + Math.floor(rnd() * 7)) : at & ~7;
      ops.push({ op: 'u64', at: a, value: rnd() < 0.7 ? pick(U64S) : BigInt(Math.floor(rnd() * orig.length * 2)) });
    } else {
      ops.push({ op: 'truncate', len: Math.floor(rnd() * orig.length) });
    }
  }
  return ops;
}

export function applyOps(orig, ops) {
  let b = Buffer.from(orig);
  for (const o of ops) {
    if (o.op === 'truncate') b = b.subarray(0, Math.min(o.len, b.length));
    else if (o.op === 'flip') { if (o.at < b.length) b[o.at] ^= o.xor; }
    else if (o.op === 'u32') { if (o.at + 4 <= b.length) b.writeUInt32LE(o.value >>> 0, o.at); }
    else if (o.op === 'u64') { if (o.at + 8 <= b.length) b.writeBigUInt64LE(BigInt(o.value), o.at); }
  }
  return Buffer.from(b);
}

/** The i-th mutation of a run: which fixture, and the ops. */
export function mutationAt(seed, i, fixtureNames, regionsByFixture) {
  const rnd = prng(iterSeed(seed, i));
  const fixture = fixtureNames[Math.floor(rnd() * fixtureNames.length)];
  return { fixture, ops: makeMutation(regionsByFixture.get(fixture).orig, regionsByFixture.get(fixture).regions, rnd) };
}

export function describeOps(ops) {
  return JSON.stringify(ops, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

/**
 * Plan the mutated bytes, then encode, decode and re-encode the plan. Returns {ok:true,...} when everything
 * is consistent, else a problem description. `lib` = {planFromObject, encodePlan, decodePlan, BpfsealError}.
 * Problems: an exception that is not a BpfsealError (at any stage), a plan from planFromObject that
 * decodePlan rejects, or a decoded plan that re-encodes differently.
 */
export function checkOne(lib, bytes, fileName) {
  let stage = 'planFromObject';
  try {
    const { plan } = lib.planFromObject(bytes, fileName);
    stage = 'encodePlan';
    const enc = lib.encodePlan(plan);
    stage = 'decodePlan';
    const dec = lib.decodePlan(enc);
    stage = 'encodePlan(decoded)';
    if (!lib.encodePlan(dec).equals(enc)) return { stage, problem: 'the decoded plan re-encodes differently' };
    return { ok: true, planned: true };
  } catch (e) {
    const info = {
      stage, name: String(e?.name ?? typeof e), code: e?.code, message: String(e?.message ?? e),
      stack: String(e?.stack ?? '').split('\n').slice(0, 6).join('\n'),
    };
    if (!(e instanceof lib.BpfsealError)) return { ...info, problem: `${info.name} is not a BpfsealError` };
    if (stage !== 'planFromObject') return { ...info, problem: `planFromObject produced a plan that ${stage} rejects` };
    return { ok: true, planned: false, stage, code: e.code, kind: e.kind };
  }
}
