#!/usr/bin/env node
/**
 * Guest-side command line for keyrings, for scripts run by runInVm:
 *   node dist/vm/guest/keyctl.js add-cert <cert.der|cert.pem> [keyring]   → prints the key serial
 *   node dist/vm/guest/keyctl.js new-keyring <name> [parent]               → prints the keyring serial
 *   node dist/vm/guest/keyctl.js describe <serial>                         → prints type;uid;gid;perm;desc
 *   node dist/vm/guest/keyctl.js session-run <name> -- <cmd> [args...]     → runs cmd in a new session keyring
 * Keyrings are numbers: -3 (the session keyring, default) or a serial. Exit 3 when the kernel refuses.
 * runInVm runs every command under session-run, so -3 is one keyring for all its processes, as in
 * a login shell (pam_keyinit).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfsealError } from '../../errors.js';
import { addCertificate, describeKey, hasSessionKeyring, joinSessionKeyring, KEY_SPEC, linkKey, newKeyring } from './keyring.js';

function ring(s: string | undefined): number {
  if (s === undefined) return KEY_SPEC.session;
  const n = Number(s);
  if (!Number.isInteger(n)) throw new TypeError(`keyring ${JSON.stringify(s)}: a number (-3 session, or a serial)`);
  return n;
}

/**
 * Join a session keyring, then run argv with it (children inherit it); the child's status is ours.
 * The user keyring is linked in, as pam_keyinit does: without the link, keys and keyrings under -4
 * are no longer "possessed" and their possessor permissions lapse (measured: add_key into a
 * keyring made in -4 by another process then fails with EACCES).
 */
function sessionRun(name: string, argv: string[]): number {
  joinSessionKeyring(name);
  linkKey(KEY_SPEC.user, KEY_SPEC.session);
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TypeError('session-run: no command after --'); // main() passes at least one
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.signal) return 128 + (constants.signals[r.signal] ?? 0);
  return r.status ?? 1;
}

function main(argv: string[]): number {
  const [cmd, a, b] = argv;
  if (cmd === 'session-run' && a && argv[2] === '--' && argv.length > 3) return sessionRun(a, argv.slice(3));
  if (cmd === 'add-cert' && a) {
    if (ring(b) === KEY_SPEC.session && !hasSessionKeyring()) {
      // The key would land in a session keyring made for this process, gone when it exits.
      throw new TypeError('this process has no session keyring, so a key added to -3 would vanish when it exits: run under `keyctl.js session-run`, or add to a keyring (new-keyring <name> -4)');
    }
    process.stdout.write(`${addCertificate(readFileSync(a), ring(b))}\n`);
  } else if (cmd === 'new-keyring' && a) process.stdout.write(`${newKeyring(a, ring(b))}\n`);
  else if (cmd === 'describe' && a) process.stdout.write(`${describeKey(ring(a)).raw}\n`);
  else {
    process.stderr.write('usage: keyctl.js add-cert <cert> [keyring] | new-keyring <name> [parent] | describe <serial> | session-run <name> -- <cmd...>\n');
    return 2;
  }
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`keyctl.js: ${(e as Error).message}\n`);
  process.exitCode = e instanceof BpfsealError ? e.exitCode : 2;
}
