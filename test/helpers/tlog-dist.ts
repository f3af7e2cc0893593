/**
 * Tests that spawn node processes run the log from dist/ (test/helpers/tlog-*.mjs import it). Rebuild
 * dist/ with `tsc -p .` when a source file the log needs is newer than its build; concurrent test
 * files serialise the rebuild with flock(1) and re-check after waiting.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './paths.js';

const tree = (sub: string) => readdirSync(join(ROOT, 'src', sub), { recursive: true }).map(String).filter((f) => f.endsWith('.ts')).map((f) => `${sub}/${f}`);

const SOURCES = [...tree('tlog'), ...tree('fsx'), 'cli/log.ts', 'cli/log-commands.ts', 'cli/log-admin.ts', 'attest/envelopes.ts', 'attest/subjects.ts', 'attest/rekor.ts', 'attest/rekor-body.ts', 'cli/output.ts', 'cli/io.ts', 'errors.ts'];

function stale(): string[] {
  return SOURCES.filter((s) => {
    const js = join(ROOT, 'dist', s.replace(/\.ts$/, '.js'));
    return !existsSync(js) || statSync(js).mtimeMs < statSync(join(ROOT, 'src', s)).mtimeMs;
  });
}

export function ensureTlogDist(): void {
  if (stale().length === 0) return;
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  // Under the lock, build only if nobody built since the sources changed (tsc rewrites every output).
  const srcs = SOURCES.map((s) => JSON.stringify(join('src', s))).join(' ');
  const script = `cd ${JSON.stringify(ROOT)} && if [ ! -e dist/tlog/store.js ] || [ -n "$(find ${srcs} -newer dist/tlog/store.js)" ]; then ${JSON.stringify(process.execPath)} ${JSON.stringify(tsc)} -p . >/dev/null; fi; true`;
  const r = spawnSync('flock', [join(ROOT, 'node_modules/.bpfseal-tsc.lock'), 'sh', '-c', script], { stdio: 'inherit', timeout: 120_000 });
  if (r.error) throw r.error;
  const left = stale();
  if (left.length) throw new Error(`dist/ is stale after tsc for: ${left.join(', ')} (run \`npx tsc -p .\`)`);
}

export const APPENDER = join(ROOT, 'test/helpers/tlog-appender.mjs');
export const TLOG_CLI = join(ROOT, 'test/helpers/tlog-cli.mjs');
