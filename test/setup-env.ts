/**
 * Keep every test away from the machine's and the repository's real state: the default attestation
 * log (./attestations), the host load log and anti-rollback state (/var/lib/bpfseal), the audit
 * checkpoint. Child processes inherit these variables.
 *
 * After each test file, that directory and every one the file made with makeTmpDir() are removed,
 * so no test file leaves /tmp/bpfseal-* behind even when it has no cleanup of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { cleanupTmpDirs } from './helpers/paths.js';

const root = mkdtempSync(join(tmpdir(), 'bpfseal-test-env-'));
process.env.BPFSEAL_LOG ??= join(root, 'attestations');
process.env.BPFSEAL_HOST_LOG ??= join(root, 'host-log');
process.env.BPFSEAL_STATE ??= join(root, 'state.json');
process.env.BPFSEAL_STATE_DIR ??= join(root, 'state');

afterAll(() => {
  cleanupTmpDirs();
  rmSync(root, { recursive: true, force: true });
});
