Feature: ruff-checker runs ruff check on the changed files, answered as a quality-gate verdict
  Findings are rule code, file and line; the check writes nothing into the repository.

  Scenario: an unused import and an undefined name are findings, and the verdict fails
    Given a repository with the file "app.py" containing:
      """
      import os


      def main():
          return undefined_name
      """
    And the input:
      """
      {"task": {"id": "t1", "args": {}}, "files": ["app.py"]}
      """
    When the plugin is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.counts.findings" is 2
    And the output at "verdict.findings[0].file" is "app.py"
    And the output at "verdict.findings[0].line" is 1
    And the output at "verdict.findings[0].rule" is "F401"
    And the output at "verdict.findings[1].rule" is "F821"
    And the output at "verdict.findings[1].line" is 5
    And the repository is unchanged

  Scenario: the repository's own settings decide, and a clean file passes
    Given a repository with the file "app.py" containing:
      """
      import os
      """
    And a repository with the file "ruff.toml" containing:
      """
      lint.ignore = ["F401"]
      """
    And the input:
      """
      {"task": {"id": "t1", "args": {}}, "files": null}
      """
    When the operation "check" is called
    Then the output at "verdict.passed" is true
    And the output at "verdict.summary" is "ruff: no findings in the repository"
    And the repository is unchanged

  Scenario: changed files that are not Python pass without running the lint
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the input:
      """
      {"task": {"id": "t1", "args": {}}, "files": ["README.md"]}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
    And the output at "verdict.counts.files" is 0

  Scenario: a changed path outside the repository is refused
    Given an empty repository
    And the input:
      """
      {"task": {"id": "t1", "args": {}}, "files": ["../outside.py"]}
      """
    When the plugin is called
    Then it fails with a message containing "is not inside the repository"
    And the ledger record's status is "error"
