// Test worker for the SIGKILL test of load: imports the built library (dist/) first, says "ready",
// waits for "go" on stdin, then runs exactly what `bpfseal load` runs and says "done" or "refused".
//   node load-worker.mjs <json config: {release, policy, pinDir, hostLog, statePath}>
import { readFileSync } from 'node:fs';
import { loadRelease } from '../../dist/runtime/load.js';
import { loadPolicy } from '../../dist/trust/policy.js';
import { BpfsealError } from '../../dist/errors.js';

const cfg = JSON.parse(process.argv[2]);
const policy = loadPolicy(cfg.policy);
const bytes = readFileSync(cfg.release);
process.stdout.write('ready\n');
process.stdin.once('data', async () => {
  const t0 = performance.now();
  try {
    await loadRelease(bytes, { policy, statePath: cfg.statePath, hostLog: cfg.hostLog, pinDir: cfg.pinDir, release: cfg.release });
    process.stdout.write(`done ${(performance.now() - t0).toFixed(2)}\n`);
  } catch (e) {
    if (!(e instanceof BpfsealError)) throw e;
    process.stdout.write(`refused ${e.code}\n`);
  }
  process.exit(0);
});
