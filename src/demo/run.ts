/**
 * The demo behind `bpfseal demo`: the whole supply chain on the bundled example (examples/xdp_counter.o), with
 * built-in defaults: plan -> keygen -> sign (+ log) -> verify -> load (real kernel when permitted,
 * else the model kernel) -> test-run and read back -> audit -> unload. Everything goes to a fresh
 * work directory; pins go to a fresh directory under /sys/fs/bpf and are removed at the end.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signInstructions } from '../attest/pkcs7.js';
import { encodeRelease } from '../attest/release.js';
import { localKeySigner, signPlan } from '../attest/sign.js';
import { mapLookup, objGet, progTestRun } from '../kernel/bpf.js';
import { canUseBpf } from '../kernel/probe.js';
import { planFromObject } from '../plan/build.js';
import { encodePlan, planDigest } from '../plan/codec.js';
import { describePlan } from '../plan/describe.js';
import { ensureBpffs } from '../runtime/bpffs.js';
import { unloadDir } from '../runtime/unload.js';
import { loadRelease } from '../runtime/load.js';
import { openLog } from '../tlog/store.js';
import { AttestationLogWitness, savePlan } from '../attest/witness.js';
import { auditAttestations } from '../audit/attestations.js';
import { kernelAudit } from '../audit/kernel-report.js';
import { pinName } from '../runtime/replay.js';
import { loadPolicy } from '../trust/policy.js';
import { writeKeyFiles } from '../trust/keys.js';
import { readInput } from '../fsx/read.js';
import { packageRoot, toolVersion } from '../pkg.js';

export const EXAMPLE = join(packageRoot(), 'examples/xdp_counter.o');

/** An Ethernet + IPv4 + UDP frame (64 bytes) for BPF_PROG_TEST_RUN. */
function udpPacket(): Buffer {
  const p = Buffer.alloc(64);
  p.writeUInt16BE(0x0800, 12); // ETH_P_IP
  p[14] = 0x45; // IPv4, IHL 5
  p.writeUInt16BE(50, 16); // total length
  p[22] = 64; // TTL
  p[23] = 17; // UDP
  return p;
}

export interface DemoOptions {
  dir?: string;
  dryRun?: boolean;
}

export async function runDemo(opts: DemoOptions): Promise<void> {
      const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'bpfseal-demo-'));
      // `--dir` may name a directory that does not exist yet (it used to crash with ENOENT).
      if (opts.dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
      const say = (step: string, text: string) => process.stdout.write(`[${step}] ${text}\n`);
      say('setup', `work directory ${dir}`);

      const object = readInput(EXAMPLE);
      const { plan } = planFromObject(object, 'xdp_counter.o');
      const planBytes = encodePlan(plan);
      const digest = planDigest(planBytes);
      writeFileSync(join(dir, 'xdp_counter.plan'), planBytes);
      const d = describePlan(plan, digest);
      say('plan', `examples/xdp_counter.o -> xdp_counter.plan sha256:${digest}`);
      for (const p of d.programs) say('plan', `  program ${p.name} (${p.type}), ${p.instructions} insns, predicted tag ${p.tag}, ${p.stable ? 'stable bytes' : 'needs fix-ups'}`);

      mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });
      const keys = writeKeyFiles(join(dir, 'keys'), 'release', 'ecdsa-p256');
      say('keygen', `ECDSA P-256 release key ${keys.keyId.slice(0, 16)}... (${keys.key}, mode 0600)`);

      const priv = createPrivateKey(readFileSync(keys.key));
      const cert = readFileSync(keys.crt, 'utf8');
      const logDir = join(dir, 'attestations');
      const log = openLog(logDir);
      const origin = log.origin;
      let signed;
      try {
        savePlan(logDir, planBytes);
        signed = await signPlan(plan, planBytes, {
          signer: localKeySigner(priv, createPublicKey(priv)), version: 1, toolVersion: toolVersion(), witnesses: [new AttestationLogWitness(log)],
          builder: { demo: 'true' }, kernelSigner: { sign: (insns) => signInstructions(insns, priv, cert), certificate: cert },
        });
      } finally {
        log.close();
      }
      const releasePath = join(dir, 'xdp_counter.bpfseal');
      writeFileSync(releasePath, encodeRelease(signed.release));
      say('sign', `in-toto statement signed (DSSE, Sigstore bundle v0.3) + ${signed.release.kernelSignatures.size} PKCS#7 kernel signature(s) -> ${releasePath}`);
      say('log', `appended to ${logDir} (${origin}); inclusion proof and signed checkpoint are in the bundle`);

      const policyPath = join(dir, 'policy.json');
      writeFileSync(policyPath, JSON.stringify({
        version: 1, signers: [{ name: 'demo-release', key: 'keys/release.pub', plans: ['xdp_*'], programTypes: ['xdp'] }],
        logs: [{ key: 'attestations/log.pub', origin }], requireLogInclusion: true,
        state: 'state.json',
      }, null, 2));
      const policy = loadPolicy(policyPath);
      const bytes = readInput(releasePath);

      const real = !opts.dryRun && canUseBpf();
      const pinDir = real ? `/sys/fs/bpf/bpfseal-demo-${process.pid}` : undefined;
      if (pinDir) ensureBpffs(pinDir);
      const hostLog = join(dir, 'host-log');
      const r = await loadRelease(bytes, { policy, statePath: join(dir, 'state.json'), pinDir, dryRun: !real, hostLog: real ? hostLog : undefined, release: releasePath });
      say('verify', `signature, subject digest, log inclusion and policy OK: ${r.verified.plan.name} v${r.verified.version} signed by '${r.verified.signer.name}'`);
      if (r.committed) say('load', `recorded in the host log ${hostLog} (entry ${r.committed.hostLogIndex}) before the pins were put in place`);
      for (const n of r.notes) say('load', `note: ${n}`);
      for (const p of r.loaded.record.programs) say('load', `${real ? 'loaded' : 'model-loaded'} ${p.name}: id ${p.id}, tag ${p.tag}${p.tag === d.programs.find((x) => x.name === p.name)?.tag ? ' (= predicted)' : ''}`);
      if (real && pinDir) {
        const prog = objGet(join(pinDir, 'count_packets'));
        const stats = objGet(join(pinDir, 'maps', pinName(plan.maps.find((m) => m.name === 'proto_stats')!)));
        try {
          for (let i = 0; i < 3; i++) progTestRun(prog, { data: udpPacket() });
          const key = Buffer.alloc(4);
          key.writeUInt32LE(17);
          const v = mapLookup(stats, key, 16);
          say('run', `BPF_PROG_TEST_RUN x3 with a UDP packet: proto_stats[17] = {packets: ${v.readBigUInt64LE(0)}, bytes: ${v.readBigUInt64LE(8)}}`);
        } finally {
          prog.close();
          stats.close();
        }
        const alog = openLog(logDir, { create: false });
        let audit;
        try {
          audit = auditAttestations(alog, { policy, statePath: join(dir, 'audit-state.json') });
        } finally {
          alog.close();
        }
        const k = kernelAudit(audit, hostLog);
        const mine = k.programs.filter((p) => r.loaded.record.programs.some((x) => x.id === p.id));
        say('audit', `log: ${audit.entries.length} attestation(s), ${audit.entries.filter((e) => e.status === 'verified').length} verified, ${audit.findings.length} finding(s); kernel: ${k.programs.length} programs loaded, ours ${mine.map((p) => `${p.name} (id ${p.id}) ${p.attested ? 'attested' : 'UNATTESTED'}`).join(', ')}`);
        const u = await unloadDir(pinDir, hostLog);
        say('unload', `removed ${u.removed.length} pins from ${pinDir} (the host log records the unload)`);
      } else {
        say('run', opts.dryRun ? 'skipped: --dry-run (the model kernel checked the replay)' : 'skipped: bpf(2) is not permitted here (the model kernel checked the replay; run as root for the real kernel)');
      }
      say('done', `files kept in ${dir}`);
}
