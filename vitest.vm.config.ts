import { defineConfig } from 'vitest/config';

/**
 * `npm run test:vm`: boots Debian kernels under qemu (test/vm). One file at a time: each file runs
 * its VMs itself, two at once, which is what two cores carry.
 */
export default defineConfig({
  test: {
    include: ['test/vm/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/vm/global-setup.ts'],
    setupFiles: ['test/setup-env.ts'],
    env: { BPFSEAL_VM_TESTS: '1' },
  },
});
