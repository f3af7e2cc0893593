// Runs `bpfseal log ...` from dist/ without src/cli/main.ts (until registerLog is wired there): the
// same Commander setup and error-to-exit-code mapping as main.ts.
//   node test/helpers/tlog-cli.mjs log verify --log <dir> [--json]
import { Command, CommanderError } from 'commander';
import { registerLog } from '../../dist/cli/log.js';
import { failure, failureLine } from '../../dist/cli/output.js';

const program = new Command().name('bpfseal').exitOverride();
registerLog(program);
try {
  await program.parseAsync(process.argv);
  process.exitCode = typeof process.exitCode === 'number' ? process.exitCode : 0;
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : 2;
  } else {
    const f = failure(e);
    process.stderr.write(failureLine(e?.file, f));
    process.exitCode = f.exit;
  }
}
