// Guest helper (test/vm/enforce.vm.test.ts): one unsigned BPF_PROG_LOAD through the project's own
// bpf(2) binding, a 2-instruction socket filter (r0 = 0; exit). Prints {"ok":true} or the refusal.
import { progLoad } from '/opt/bpfseal/dist/kernel/bpf.js';

try {
  const insns = Buffer.from('b7000000000000009500000000000000', 'hex');
  progLoad({ type: 1, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'unsigned_probe', expectedAttachType: 0, fdArray: [] }).close();
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ ok: false, code: e.code, errno: e.errno, message: e.message })}\n`);
}
