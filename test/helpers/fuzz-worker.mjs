// Worker thread for the mutation fuzz: runs the built library (dist/) so the main thread can stop it
// if one call never returns. Posts {type:'at', i} before every call, {type:'problem', ...} per problem,
// and {type:'done', stats} at the end.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { applyOps, checkOne, mutationAt, regions } from './mutate.mjs';

const { dist, fixtures, seed, count, first } = workerData;
const imp = (p) => import(pathToFileURL(join(dist, p)).href);
const [{ planFromObject }, { encodePlan, decodePlan }, { BpfsealError }] = await Promise.all([
  imp('plan/build.js'), imp('plan/codec.js'), imp('errors.js'),
]);
const lib = { planFromObject, encodePlan, decodePlan, BpfsealError };
const byFixture = new Map(fixtures.map((f) => {
  const orig = readFileSync(f.path);
  return [f.name, { orig, regions: regions(orig) }];
}));
const names = fixtures.map((f) => f.name);
const stats = { total: 0, planned: 0, rejected: 0, codes: {}, stages: {} };
for (let i = first; i < first + count; i++) {
  const m = mutationAt(seed, i, names, byFixture);
  const bytes = applyOps(byFixture.get(m.fixture).orig, m.ops);
  parentPort.postMessage({ type: 'at', i });
  const r = checkOne(lib, bytes, m.fixture);
  stats.total++;
  if (!r.ok) {
    parentPort.postMessage({ type: 'problem', i, fixture: m.fixture, ops: m.ops, ...r });
    continue;
  }
  if (r.planned) stats.planned++;
  else {
    stats.rejected++;
    stats.codes[r.code] = (stats.codes[r.code] ?? 0) + 1;
    stats.stages[r.stage] = (stats.stages[r.stage] ?? 0) + 1;
  }
}
parentPort.postMessage({ type: 'done', stats });
