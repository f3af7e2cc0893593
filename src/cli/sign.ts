/**
 * `bpfseal sign <object.o|file.plan>... (--key <k> [--cert <crt>] | --keyless [--fulcio-url <url>] [--identity-token <t>])
 *   [--rekor-url <url>] [--version N] [-o <file|dir>] [--json]`
 */
import type { ErrorCode } from '../errors.js';
import type { Command } from 'commander';
import type { Witness } from '@sigstore/sign';
import { checkServiceURL, FULCIO_URL as DEFAULT_FULCIO_URL, REKOR_URL as DEFAULT_REKOR_URL } from '../attest/urls.js';
import { BpfsealError } from '../errors.js';
import { addSectionTypeOption, sectionTypes } from './sections.js';
import { outputPath, Progress, readInput } from './io.js';
import { reserveOutput } from '../fsx/durable.js';
import { failure, failureLine, printJson, type Failure } from './output.js';
import { toolVersion } from './version.js';

export interface SignResult {
  input: string;
  release?: string;
  digest?: string;
  version?: number;
  kernelSignatures?: number;
  unsignedPrograms?: string[];
  /** The signed kernel loader: its digest (`insns || blob`), size and host inputs. */
  loader?: { format: number; sha256: string; instructions: number; blobBytes: number; hostInputs: { kind: string; map: string }[] };
  /** Keyless only: the Fulcio certificate's SAN and OIDC issuer. */
  identity?: string;
  issuer?: string;
  error?: Failure;
}

interface SignOpts {
  key?: string;
  cert?: string;
  keyless?: boolean;
  fulcioUrl?: string;
  rekorUrl?: string;
  identityToken?: string;
  version: string;
  builder?: string[];
  out?: string;
  json?: boolean;
  sectionType?: string[];
  /** --log <dir> (string), default (true), or --no-log (false). */
  log?: string | boolean;
  /** --no-loader: false. */
  loader?: boolean;
}

const usage = (code: ErrorCode, msg: string) => new BpfsealError('usage', code, msg);

/** Flag combinations: exactly one of --key/--keyless; --cert only with a key; Fulcio flags only keyless. */
function checkSignerFlags(opts: SignOpts): void {
  if (!opts.key === !opts.keyless) throw usage('USAGE_SIGNER', opts.key ? 'give --key or --keyless, not both' : 'give exactly one of --key <key> or --keyless');
  if (opts.keyless && opts.cert) {
    throw usage('USAGE_KEYLESS_CERT', '--cert cannot be used with --keyless: kernel program signatures are checked against a kernel keyring, which needs a long-lived key and certificate; a Fulcio certificate is ephemeral (minutes). Use --key <k> --cert <crt> for kernel signatures');
  }
  if (!opts.keyless) {
    if (opts.fulcioUrl !== undefined) throw usage('USAGE_SIGNER', '--fulcio-url needs --keyless');
    if (opts.identityToken !== undefined) throw usage('USAGE_SIGNER', '--identity-token needs --keyless');
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function parseBuilder(list: string[] | undefined): Record<string, string> {
  // No prototype: "--builder __proto__=x" is a key like any other, not a write to Object.prototype.
  const out = Object.create(null) as Record<string, string>;
  for (const s of list ?? []) {
    const i = s.indexOf('=');
    if (i <= 0) throw new BpfsealError('usage', 'USAGE_BUILDER', `--builder ${s}: expected key=value`);
    const key = s.slice(0, i);
    if (Object.hasOwn(out, key)) throw new BpfsealError('usage', 'USAGE_BUILDER', `--builder ${key}: given twice`);
    out[key] = s.slice(i + 1);
  }
  return { ...out };
}

export function registerSign(program: Command): void {
  const cmd = program
    .command('sign')
    .description('plan (if needed), attest and sign: writes one self-contained <name>.bpfseal release per input')
    .argument('<input...>', 'BPF ELF objects or .plan files')
    .option('--key <key>', 'private key (PKCS#8 PEM), from bpfseal keygen (required unless --keyless)')
    .option('--cert <crt>', 'certificate of the key: adds a PKCS#7 kernel signature per program (RSA or ECDSA keys)')
    .option('--keyless', 'sign with a short-lived Fulcio certificate for the CI\'s OIDC identity (Sigstore); logs in Rekor')
    .option('--fulcio-url <url>', `Fulcio base URL for --keyless (default ${DEFAULT_FULCIO_URL})`)
    .option('--rekor-url <url>', `add a Rekor transparency-log entry (default with --keyless: ${DEFAULT_REKOR_URL})`)
    .option('--identity-token <token>', 'OIDC identity token for --keyless (default: $SIGSTORE_ID_TOKEN, else the CI\'s, e.g. GitHub Actions)')
    .option('--log <dir>', 'local attestation log to append to (default: $BPFSEAL_LOG, else ./attestations)')
    .option('--no-log', 'do not append to a local attestation log')
    .option('--no-loader', 'with --cert: sign the per-program signatures only, not the plan\'s kernel loader (which kernels from 7.3 verify)')
    .option('--version <n>', 'release version for anti-rollback (integer)', '1')
    .option('--builder <key=value>', 'builder metadata recorded in the attestation (repeatable)', collect)
    .option('-o, --out <file|dir>', 'output file (one input) or directory; default: next to each input')
    .option('--json', 'print a JSON array of {input, release, digest}');
  addSectionTypeOption(cmd)
    .action(async (inputs: string[], opts: SignOpts) => {
      checkSignerFlags(opts);
      // Loaded on use: the Sigstore signing stack is most of bpfseal's start-up time.
      const { bundleSignerIdentity, keylessSigner, rekorWitness } = await import('../attest/keyless.js');
      const { keyFileSigner, signPlan } = await import('../attest/sign.js');
      const { planFromBytes } = await import('../plan/file.js');
      const overrides = await sectionTypes(opts.sectionType);
      const { encodeRelease } = await import('../attest/release.js');
      if (!/^\d+$/.test(opts.version) || !Number.isSafeInteger(Number(opts.version))) throw new BpfsealError('usage', 'USAGE_VERSION', `--version ${opts.version}: expected a non-negative integer`);
      const version = Number(opts.version);
      const builder = parseBuilder(opts.builder);
      const rekorUrl = opts.rekorUrl !== undefined ? checkServiceURL(opts.rekorUrl, '--rekor-url') : opts.keyless ? DEFAULT_REKOR_URL : undefined;
      const witnesses: Witness[] = rekorUrl ? [rekorWitness(rekorUrl)] : [];
      // The local log (default on): the attestation is appended and its inclusion proof goes into the bundle.
      let log: { close(): void; dir: string } | undefined;
      const { savePlan } = await import('../attest/envelopes.js');
      if (opts.log !== false) {
        const { defaultLogDir } = await import('../tlog/store.js');
        const { openLogForWriting } = await import('../tlog/migrate.js');
        const { AttestationLogWitness } = await import('../attest/witness.js');
        const l = await openLogForWriting(typeof opts.log === 'string' ? opts.log : defaultLogDir());
        log = l;
        witnesses.push(new AttestationLogWitness(l));
      }
      const signer = opts.keyless
        ? keylessSigner({ fulcioURL: opts.fulcioUrl !== undefined ? checkServiceURL(opts.fulcioUrl, '--fulcio-url') : DEFAULT_FULCIO_URL, identityToken: opts.identityToken })
        : undefined;
      const keyed = signer ? undefined : keyFileSigner(opts as SignOpts & { key: string });
      const progress = new Progress(inputs.length, 'signing');
      const results: SignResult[] = [];
      for (const [i, input] of inputs.entries()) {
        progress.tick(i, input);
        try {
          const out = outputPath(input, '.bpfseal', opts.out, inputs.length);
          const { plan, bytes, digest } = planFromBytes(readInput(input), input, { sectionTypes: overrides });
          // The output is reserved before anything is logged: an unwritable -o leaves no entry without a release.
          const reserved = reserveOutput(out);
          let s: Awaited<ReturnType<typeof signPlan>>;
          try {
            if (log) savePlan(log.dir, bytes); // beside the log, for audit to check the attestation's claims
            s = await signPlan(plan, bytes, { digest, signer: signer ?? keyed!.signer, witnesses, version, toolVersion: toolVersion(), builder, kernelSigner: keyed?.kernelSigner, loader: opts.loader });
          } catch (e) {
            reserved.abandon();
            throw e;
          }
          reserved.commit(encodeRelease(s.release));
          const who = signer ? bundleSignerIdentity(s.release.bundle) : undefined;
          results.push({
            input, release: out, digest: `sha256:${digest}`, version, kernelSignatures: s.release.kernelSignatures.size, unsignedPrograms: s.unsignedPrograms,
            ...(s.statement.predicate.loader ? { loader: s.statement.predicate.loader } : {}),
            ...(who ? { identity: who.san, issuer: who.issuer } : {}),
          });
        } catch (e) {
          results.push({ input, error: failure(e) });
        }
      }
      progress.done();
      log?.close();
      if (opts.json) printJson(results);
      for (const r of results) {
        if (r.error) process.stderr.write(failureLine(r.input, r.error));
        else {
          if (!opts.json) process.stdout.write(`${r.digest}  ${r.release}\n`);
          if (r.unsignedPrograms?.length) process.stderr.write(`note: ${r.input}: no per-program kernel signature for ${r.unsignedPrograms.join(', ')} (host fix-ups change their bytes${r.loader ? '; the signed loader covers them' : ''})\n`);
        }
      }
      // Keyless: say who the certificate names (one line per distinct identity, normally one).
      for (const who of new Set(results.filter((r) => r.identity !== undefined).map((r) => `signed as ${r.identity} (issuer ${r.issuer})`))) {
        process.stderr.write(`${who}\n`);
      }
      process.exitCode = Math.max(0, ...results.map((r) => r.error?.exit ?? 0));
    });
}
