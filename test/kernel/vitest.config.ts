import { defineConfig } from 'vitest/config';

/**
 * The suites that run inside the kernel lane's VM (test/kernel/lane.ts), where the project tree is
 * read-only: vitest's cache goes to the guest's tmpfs. Files run one at a time because they share
 * the guest's devices (one i2c-stub, one watchdog, one gpio-sim chip).
 */
export default defineConfig({
  cacheDir: '/tmp/vitest-cache',
  test: {
    include: ['test/kernel/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
