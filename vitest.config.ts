import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // vitest's default is one worker per core minus one: a single worker on 2-core machines. The tests
    // wait on child processes, fsync and the kernel most of the time, so two workers on two cores
    // halve the suite (measured: 281 s -> 145 s here); they share nothing (own temp dirs, pin dirs,
    // unique kernel names).
    maxWorkers: Math.max(2, availableParallelism()),
    setupFiles: ['test/setup-env.ts'],
  },
});
