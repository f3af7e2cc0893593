/**
 * `bpfseal enforce --release <enforcer.bpfseal> [--policy <file>|--key <pub>] [--keyring <spec>]... [--pin <dir>] [--json]`
 * `bpfseal enforce --status | --drain | --off [--pin <dir>] [--json]`, `bpfseal enforce --object`
 * Exit codes: 0 done (status: active); 1 the release was refused by the policy (status: not active, or
 * active with problems); 2 usage or input; 3 the kernel cannot enforce or refused.
 */
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import { readInput } from './io.js';
import { printJson } from './output.js';
import { addTrustOptions, resolvePolicy, statePath, type TrustOpts } from './trust.js';

interface EnforceOpts extends TrustOpts {
  release?: string;
  keyring?: string[];
  pin?: string;
  hostLog?: string;
  status?: boolean;
  drain?: boolean;
  off?: boolean;
  object?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function mode(o: EnforceOpts): 'enable' | 'status' | 'drain' | 'off' | 'object' {
  const modes = (['status', 'drain', 'off', 'object'] as const).filter((m) => o[m]);
  if (modes.length > 1) throw new BpfsealError('usage', 'USAGE_ENFORCE_MODE', `give one of --status, --drain, --off, --object (not ${modes.map((m) => `--${m}`).join(' and ')})`);
  const m = modes[0];
  if (m) {
    if (o.release || o.keyring?.length || o.policy || o.key) throw new BpfsealError('usage', 'USAGE_ENFORCE_MODE', `--${m} takes no --release, --keyring, --policy or --key (they are for enabling)`);
    return m;
  }
  if (!o.release) throw new BpfsealError('usage', 'USAGE_NO_RELEASE', 'enforce needs --release <enforcer.bpfseal> (sign the bundled object: bpfseal sign "$(bpfseal enforce --object)" --key ... --cert ...), or one of --status, --drain, --off');
  return 'enable';
}

async function run(o: EnforceOpts): Promise<number> {
  const m = mode(o);
  if (m === 'object') {
    const { bundledEnforcerObject } = await import('../enforce/shape.js');
    process.stdout.write(o.json ? `${JSON.stringify({ object: bundledEnforcerObject() })}\n` : `${bundledEnforcerObject()}\n`);
    return 0;
  }
  const { hostLogDir } = await import('../hostlog/hostlog.js');
  const { DEFAULT_ENFORCE_PIN } = await import('../enforce/standing.js');
  const hostLog = hostLogDir(o.hostLog);
  const pin = o.pin ?? DEFAULT_ENFORCE_PIN;
  const say = (s: string) => { if (!o.json) process.stdout.write(`${s}\n`); };
  if (m === 'enable') {
    // The kernel first: on one that cannot enforce, say so (exit 3) before reading anything else.
    const { requireEnforcementSupport } = await import('../enforce/enable.js');
    requireEnforcementSupport();
    const policy = await resolvePolicy(o);
    const { enableEnforcement } = await import('../enforce/enable.js');
    const bytes = readInput(o.release!, { kind: 'release' });
    const r = await enableEnforcement(bytes, { policy, statePath: statePath(o, policy), hostLog, pinDir: pin, release: o.release!, keyrings: o.keyring ?? [] });
    if (o.json) printJson({ ok: true, active: true, ...r });
    else {
      for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
      say(`enforcement on: ${r.plan} v${r.version} ${r.digest} (signer ${r.signer.name ?? r.signer.identity}), loader ${r.loader}, kernel verified ${r.kernelVerified}`);
      say(`  program id ${r.programId} attached to bpf_prog_load by link id ${r.linkId}, pinned under ${r.pinDir}`);
      for (const a of r.allow) say(`  allow ${a.serial !== undefined ? `keyring ${a.serial}${a.description ? ` '${a.description}'` : ''}` : `${a.keyringType} keyring`} (${a.spec})`);
      say(`  took ${r.ms.total} ms (probe ${r.ms.probe} ms, verify+load+attach ${r.ms.load} ms)`);
    }
    return 0;
  }
  if (m === 'off') {
    const { enforceOff } = await import('../enforce/status.js');
    const r = await enforceOff(pin, hostLog);
    if (o.json) printJson({ ok: true, active: false, ...r });
    else {
      for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
      if (r.wasActive) say(`enforcement off: removed ${r.removed.length} pin(s) from ${r.pinDir}${r.detached ? ' (detached at once)' : ''}; ${r.drained} decision(s) drained${r.counts ? `; ${r.counts.decisions} made (${r.counts.allowed} allowed, ${r.counts.denied} denied, ${r.counts.lost} lost)` : ''}`);
    }
    return 0;
  }
  const { enforceStatus } = await import('../enforce/status.js');
  const s = await enforceStatus(pin, hostLog, { drain: true });
  const code = !s.active ? 'ENFORCE_INACTIVE' : s.problems.length ? 'ENFORCE_DEGRADED' : undefined;
  const why = code === 'ENFORCE_INACTIVE'
    ? (s.loadId ? `the enforcer at ${s.pinDir} is not attached as recorded` : `no enforcer is recorded at ${s.pinDir}`)
    : `enforcement is active with ${s.problems.length} problem(s)`;
  // --status's exit 1 is an outcome like any failure: the status document also carries the `error` every command's JSON has.
  const failed = code !== undefined && m !== 'drain';
  if (o.json) printJson({ ok: !code, ...(code ? { code } : {}), ...s, ...(failed ? { error: { code, message: why, exit: 1 } } : {}) });
  else if (m === 'drain') say(s.drained !== undefined ? `drained ${s.drained} decision(s) into ${hostLog}` : `no enforcer at ${s.pinDir}`);
  else if (!s.loadId) say(`enforcement not active: no enforcer is recorded at ${s.pinDir} in the host log ${hostLog}`);
  else {
    say(`enforcement ${s.active ? 'active' : 'NOT active'}: ${s.plan} v${s.version} (signer ${s.signer ?? '?'}) since ${s.since}, pinned under ${s.pinDir}`);
    say(`  program id ${s.programId ?? '-'}, link id ${s.linkId ?? '-'}`);
    for (const k of s.allow?.serials ?? []) say(`  allow keyring ${k.serial}${k.description ? ` '${k.description}'` : ''}`);
    for (const t of s.allow?.types ?? []) say(`  allow ${t} keyring`);
    if (s.counts) say(`  decisions ${s.counts.decisions}: ${s.counts.allowed} allowed, ${s.counts.denied} denied, ${s.counts.lost} lost; ${s.drained ?? 0} drained into the host log now`);
  }
  if (!o.json) {
    for (const p of s.problems) process.stderr.write(`problem: ${p}\n`);
    if (code) process.stderr.write(`bpfseal: ${code}: ${why}\n`);
  }
  return m === 'drain' ? 0 : code ? 1 : 0;
}

export function registerEnforce(program: Command): void {
  addTrustOptions(
    program
      .command('enforce')
      .description('refuse every BPF program load not signed by an allowed keyring (BPF LSM, 7.2+ kernels): on, --status, --drain, --off'),
  )
    .option('--release <file>', 'the enforcer release (the bundled object, signed with `sign --cert` by a signer the policy trusts)')
    .option('--keyring <spec>', 'also admit programs verified against this keyring: a keyring id or serial, a name, or builtin/secondary/platform/session/user (repeatable)', collect)
    .option('--pin <dir>', 'where the enforcer is pinned (default /sys/fs/bpf/bpfseal-enforce)')
    .option('--host-log <dir>', 'host load log (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)')
    .option('--status', 'say whether enforcement is active, with which keyrings and how many decisions (drains the decisions first; exit 1 when not active)')
    .option('--drain', 'append the decisions waiting in the ring buffer to the host log')
    .option('--off', 'detach and remove the enforcer (recorded)')
    .option('--object', 'print the path of the bundled enforcer object (to sign it)')
    .option('--json', 'print one JSON document')
    .action(async (o: EnforceOpts) => {
      // Failures go to main(): with --json, one {"error": {code, message, exit}} document as for every command.
      process.exitCode = await run(o);
    });
}
