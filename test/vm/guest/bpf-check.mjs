// Run inside the guest: bpf(2) through the project's own binding (dist/kernel/bpf.js), and the
// kernel's signature check on a 2-instruction program signed on the host. Prints one JSON object.
import { readFileSync } from 'node:fs';
import { mapCreate, mapLookup, mapUpdate, progLoad, progTestRun } from '/opt/bpfseal/dist/kernel/bpf.js';
import { addCertificate } from '/opt/bpfseal/dist/vm/guest/keyring.js';

const file = (f) => readFileSync(`/root/${f}`);
const out = {};
function attempt(name, fn) {
  try {
    out[name] = { ok: true, value: fn() };
  } catch (e) {
    out[name] = { ok: false, code: e.code ?? String(e), message: e.message };
  }
}

attempt('map', () => {
  const m = mapCreate({ type: 2, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, numaNode: 0, name: 'vmtest', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
  const key = Buffer.alloc(4);
  mapUpdate(m, key, Buffer.from('0123456789abcdef', 'hex'));
  const v = mapLookup(m, key, 8).toString('hex');
  m.close();
  return v;
});

// BPF_PROG_TYPE_SOCKET_FILTER; the test run returns r0.
function load(insns, signature) {
  const p = progLoad({
    type: 1, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'vmtest', expectedAttachType: 0, fdArray: [],
    ...(signature ? { signature, keyringId: -3 } : {}),
  });
  const r = progTestRun(p, { data: Buffer.alloc(64) });
  p.close();
  return r.retval;
}

attempt('unsigned', () => load(file('prog.bin')));
attempt('signedNoCert', () => load(file('prog.bin'), file('sig-ec.der')));
attempt('certEc', () => addCertificate(file('ec.der')));
attempt('certRsa', () => addCertificate(file('rsa.pem')));
attempt('signedEc', () => load(file('prog.bin'), file('sig-ec.der')));
attempt('signedRsa', () => load(file('prog.bin'), file('sig-rsa.der')));
attempt('tampered', () => load(file('prog-tampered.bin'), file('sig-ec.der')));
console.log(JSON.stringify(out));
