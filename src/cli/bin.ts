#!/usr/bin/env node
/**
 * The installed entry point (package.json "bin" is its bundle, dist/bundle/bpfseal.mjs). `bpfseal
 * --version` alone is answered here, before commander and every command's options are loaded (it is
 * what scripts run most often to probe for the tool); everything else is main.ts's main(), which has no side effects of its own (tests run it in process).
 */
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { toolVersion } = await import('../pkg.js');
  process.stdout.write(`${toolVersion()}\n`);
} else {
  const { main } = await import('./main.js');
  // `bpfseal inspect x --disasm | head`: a closed pipe ends the output, not the process with a trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
