// Closes a jest run with its totals. Under test/run-suites.mjs (RO_TEST_RESULTS_FILE set) it names
// the Docker flavour of the pass and hands the totals and failed tests to the runner, which prints
// the one closing line "N passed, M failed" over all passes; run alone, it prints that line itself.
const { writeFileSync } = require('node:fs');
const { relative } = require('node:path');

class TotalsReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const failures = results.testResults.flatMap((suite) => {
      const file = relative(process.cwd(), suite.testFilePath);
      if (suite.testExecError) return [`${file}: ${suite.testExecError.message.split('\n')[0]}`];
      return suite.testResults.filter((test) => test.status === 'failed').map((test) => `${file} › ${test.fullName}`);
    });
    const label = process.env.RO_TEST_FLAVOUR_LABEL;
    const file = process.env.RO_TEST_RESULTS_FILE;
    if (file) {
      writeFileSync(file, JSON.stringify({ passed: results.numPassedTests, failed, failures }));
      process.stdout.write(`\n${label}: ${results.numPassedTests} passed, ${failed} failed\n`);
    } else {
      process.stdout.write(`\n${results.numPassedTests} passed, ${failed} failed\n`);
    }
  }
}
module.exports = TotalsReporter;
