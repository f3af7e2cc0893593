/** Types for mutate.mjs (plain JS so that the fuzz worker thread can load it without a TS loader). */
export type MutationOp =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'u32'; at: number; value: number }
  | { op: 'u64'; at: number; value: bigint }
  | { op: 'truncate'; len: number };
export interface Region { name: string; start: number; len: number; header?: number }
export interface FixtureRegions { orig: Buffer; regions: Region[] }
export interface FuzzLib {
  planFromObject(bytes: Buffer, fileName: string): { plan: any };
  encodePlan(plan: any): Buffer;
  decodePlan(bytes: Buffer): any;
  BpfsealError: abstract new (...args: any[]) => Error;
}
export type CheckResult =
  | { ok: true; planned: true }
  | { ok: true; planned: false; stage: string; code: string; kind: string }
  | { ok?: undefined; stage: string; problem: string; name?: string; code?: string; message?: string; stack?: string };

export function prng(seed: number): () => number;
export function iterSeed(seed: number, i: number): number;
export function regions(buf: Buffer): Region[];
export function makeMutation(orig: Buffer, regionList: Region[], rnd: () => number): MutationOp[];
export function applyOps(orig: Buffer, ops: MutationOp[]): Buffer;
export function mutationAt(seed: number, i: number, fixtureNames: string[], regionsByFixture: Map<string, FixtureRegions>): { fixture: string; ops: MutationOp[] };
export function describeOps(ops: MutationOp[]): string;
export function checkOne(lib: FuzzLib, bytes: Buffer, fileName: string): CheckResult;
