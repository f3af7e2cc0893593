/**
 * Keep every test away from the machine's and the repository's real state: the default attestation
 * log (./attestations), the host load log and anti-rollback state (/var/lib/bpfseal), the audit
 * checkpoint. Child processes inherit these variables.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = mkdtempSync(join(tmpdir(), 'bpfseal-test-env-'));
process.env.BPFSEAL_LOG ??= join(root, 'attestations');
process.env.BPFSEAL_HOST_LOG ??= join(root, 'host-log');
process.env.BPFSEAL_STATE ??= join(root, 'state.json');
process.env.BPFSEAL_STATE_DIR ??= join(root, 'state');
