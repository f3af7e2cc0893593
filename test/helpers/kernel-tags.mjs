// FD-index stability worker: `node kernel-tags.mjs <dist> <fixtures dir> <K> <fixture.o>...`
// Opens K descriptors on /dev/null first (so the maps this process creates get different fd numbers
// from run to run), then plans and replays each fixture into the real kernel and prints one JSON line:
// { k, fixtures: { name: { tags: {prog: tag}, insnSha256: {prog: sha}, fds: {prog: [fd_array fds]} } }, leaked }.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, fixturesDir, kArg, ...fixtures] = process.argv.slice(2);
const imp = (p) => import(pathToFileURL(join(dist, p)).href);
const [{ planFromBytes }, { replay }, { realKernel }, { openFds }] = await Promise.all([
  imp('plan/file.js'), imp('runtime/replay.js'), imp('runtime/backend.js'), imp('kernel/fd.js'),
]);

const k = Number(kArg);
const dummies = [];
for (let i = 0; i < k; i++) dummies.push(openSync('/dev/null', 'r'));

const out = { k, pid: process.pid, fixtures: {}, leaked: [] };
for (const f of fixtures) {
  const { plan, digest } = planFromBytes(readFileSync(join(fixturesDir, f)), f);
  const inner = realKernel();
  const insnSha256 = {};
  const fds = {};
  const backend = {
    ...inner,
    progLoad(p) {
      insnSha256[p.name] = createHash('sha256').update(p.insns).digest('hex');
      fds[p.name] = p.fdArray.map((h) => h.value);
      return inner.progLoad(p);
    },
  };
  const c = replay(plan, digest, backend);
  try {
    out.fixtures[f] = { tags: Object.fromEntries(c.record.programs.map((p) => [p.name, p.tag])), insnSha256, fds };
  } finally {
    c.close();
  }
}
out.leaked = openFds().map((x) => x.what);
for (const d of dummies) closeSync(d);
process.stdout.write(JSON.stringify(out) + '\n');
