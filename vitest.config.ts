import { defineConfig } from 'vitest/config';

// Three projects, fastest first: pure logic, the HTTPS server in-process, and end-to-end
// through a real kube-apiserver (built from Go modules on first run, then cached).
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.e2e.test.ts'],
          environment: 'node',
          // One control plane at a time: 2 cores and real processes.
          fileParallelism: false,
          // The control plane the files that can share one use (test/harness/shared.ts).
          globalSetup: ['./test/harness/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 40 * 60_000,
        },
      },
    ],
  },
});
