/** Types for scripts/gen-schemas.mjs (used by the test that checks the compiled validator is current). */
export function generate(schemaPath: string): string;
