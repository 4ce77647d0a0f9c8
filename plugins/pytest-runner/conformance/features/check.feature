Feature: pytest-runner runs the repository's tests, answered as a quality-gate verdict
  Failed tests are findings with their node id; nothing of the run lands in the repository.

  Scenario: passing tests pass the verdict and leave the repository as it was
    Given a repository with the file "test_math.py" containing:
      """
      def test_sum():
          assert sum([1, 2, 3]) == 6
      """
    And the task args:
      """
      {}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
    And the output at "verdict.counts.passed" is 1
    And the repository is unchanged
    And the ledger record's status is "completed"

  Scenario: a failing test is a finding named by its node id, and the verdict fails
    Given a repository with the file "tests/test_math.py" containing:
      """
      def test_sum():
          assert sum([1, 2, 3]) == 6


      def test_broken():
          raise ValueError("broken on purpose")
      """
    And the task args:
      """
      {}
      """
    When the operation "check" is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.findings[0].rule" is "tests/test_math.py::test_broken"
    And the output at "verdict.findings[0].message" is "failure: ValueError: broken on purpose"
    And the output at "verdict.counts.failures" is 1
    And the repository is unchanged

  Scenario: only the tests the task names run
    Given a repository with the file "test_math.py" containing:
      """
      def test_sum():
          assert sum([1, 2, 3]) == 6


      def test_broken():
          raise ValueError("broken on purpose")
      """
    And the task args:
      """
      {"tests": ["test_math.py::test_sum"]}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
    And the output at "verdict.counts.tests" is 1

  Scenario: a test selection that pytest would read as an option is refused
    Given an empty repository
    And the task args:
      """
      {"tests": ["--collect-only"]}
      """
    When the plugin is called
    Then it fails with a message containing "may not start with '-'"
    And the ledger record's status is "error"
