import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The e2e suites start servers and child processes; keep the 2-core machine from thrashing.
    maxWorkers: 2,
  },
})
