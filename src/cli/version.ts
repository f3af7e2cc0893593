/** The tool's version (src/pkg.ts), for the CLI. */
export { toolVersion } from '../pkg.js';
