/** Jest runs unit specs next to the code and integration/e2e specs under test/. */
module.exports = {
  rootDir: '.',
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
  testRegex: '.*\\.spec\\.ts$',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.jest.json', diagnostics: false }] },
  moduleNameMapper: {
    '^@mesh/contracts(.*)$': '<rootDir>/libs/contracts/src$1',
    '^@mesh/eventstore(.*)$': '<rootDir>/libs/eventstore/src$1',
    '^@mesh/runtime(.*)$': '<rootDir>/libs/runtime/src$1',
    '^@mesh/audit(.*)$': '<rootDir>/libs/audit/src$1',
    '^@mesh/common(.*)$': '<rootDir>/libs/common/src$1',
    '^@mesh/config(.*)$': '<rootDir>/libs/config/src$1',
    '^@mesh/identity(.*)$': '<rootDir>/libs/identity/src$1',
    '^@mesh/testing(.*)$': '<rootDir>/test/support$1',
  },
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
