// Plan and load every corpus object with bpfseal, and with `bpftool prog loadall` in a private mount
// namespace (fresh bpffs), and list every difference. Usage (root): node scripts/corpus/compare.mjs <objs dir>
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { planFromBytes } from '../../dist/plan/file.js';
import { replay } from '../../dist/runtime/replay.js';
import { realKernel } from '../../dist/runtime/backend.js';

const dir = process.argv[2] ?? '/tmp/bpfseal-corpus/objs';
const files = readdirSync(dir).filter((f) => f.endsWith('.o')).sort();
const count = { planned: 0, bothLoad: 0, bpftoolOnly: 0, bpfsealOnly: 0, neither: 0 };
const diffs = [];
for (const f of files) {
  const path = `${dir}/${f}`;
  const b = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    'mount -t bpf bpf /sys/fs/bpf && timeout 30 bpftool prog loadall "$1" /sys/fs/bpf/cmp', 'sh', path], { encoding: 'utf8' });
  const bOk = b.status === 0;
  let sOk = false, why = '';
  try {
    const { plan, digest } = planFromBytes(readFileSync(path), f);
    count.planned++;
    replay(plan, digest, realKernel(), {}).close();
    sOk = true;
  } catch (e) {
    why = `${e.code ?? ''}: ${String(e.message).split('\n')[0]}`;
  }
  if (bOk && sOk) count.bothLoad++;
  else if (bOk) { count.bpftoolOnly++; diffs.push(`bpftool only\t${f}\t${why}`); }
  else if (sOk) { count.bpfsealOnly++; diffs.push(`bpfseal only\t${f}\t${(b.stderr.split('\n').find((l) => l.startsWith('libbpf:')) ?? b.stderr.split('\n')[0]).slice(0, 160)}`); }
  else count.neither++;
}
console.log(JSON.stringify({ objects: files.length, ...count }));
for (const d of diffs) console.log(d);
