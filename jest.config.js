// Tests are compiled by tsc with the rest of the code (one module system: ESM) and run from dist/.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist'],
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 120000,
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/test/totals-reporter.cjs'],
};
