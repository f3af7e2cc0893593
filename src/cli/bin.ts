#!/usr/bin/env node
/**
 * The installed entry point (package.json "bin" is its bundle, dist/bundle/bpfseal.mjs). `bpfseal
 * --version` alone is answered here, before commander and every command's options are loaded (it is
 * what scripts run most often to probe for the tool); everything else is main.ts, as before.
 */
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { toolVersion } = await import('../pkg.js');
  process.stdout.write(`${toolVersion()}\n`);
} else {
  await import('./main.js');
}
