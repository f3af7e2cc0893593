// Test worker: appends entries to a log through dist/ and prints one line per acknowledged append,
// "<index> <leaf hash hex>", only after append()/appendMany() returned (the acknowledgement).
//   node tlog-appender.mjs <log dir> <writer id> <count> [batch size]
// Entries are JSON {"w":<writer id>,"i":<sequence>,"pad":...}; batch size > 1 uses appendMany.
import { openLog } from '../../dist/tlog/store.js';

const [dir, writer, countArg, batchArg] = process.argv.slice(2);
const count = Number(countArg);
const batch = Number(batchArg ?? '1');
const log = openLog(dir);
const entry = (i) => Buffer.from(JSON.stringify({ w: writer, i, pad: 'x'.repeat(64 + (i % 7) * 40) }));
process.stdout.write('ready\n');
let out = '';
for (let i = 0; i < count; i += batch) {
  const n = Math.min(batch, count - i);
  if (n === 1) {
    const r = await log.append(entry(i));
    out = `${r.index} ${r.leafHash.toString('hex')}\n`;
  } else {
    const r = await log.appendMany(Array.from({ length: n }, (_, k) => entry(i + k)));
    out = r.leafHashes.map((h, k) => `${r.first + k} ${h.toString('hex')}\n`).join('');
  }
  // Synchronous write to the pipe: an acknowledged append is reported before the next one starts.
  process.stdout.write(out);
}
log.close();
