Feature: contract-validator checks documents against the engine's contracts, as a quality-gate verdict
  One finding per problem, with its JSON path and, for a file, its line; it never writes anything.

  Scenario: a valid task passes
    Given the task args:
      """
      {"contract": "task.v1", "data": {"id": "t1", "tool": "git", "repo": "."}}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
    And the output at "verdict.findings" is []
    And the output at "verdict.counts.documents" is 1
    And the ledger record's status is "completed"

  Scenario: a broken line of a task file is a finding with its file, line and JSON path
    Given a repository with the file "tasks/inbox.jsonl" containing:
      """
      {"id": "a", "tool": "git", "repo": "."}
      {"id": "b", "tool": "git", "repo": ".", "timeout_sec": "soon"}
      """
    And the task args:
      """
      {"contract": "task.v1", "files": ["tasks/inbox.jsonl"]}
      """
    When the operation "check" is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.findings[0].file" is "tasks/inbox.jsonl"
    And the output at "verdict.findings[0].line" is 2
    And the output at "verdict.findings[0].path" is "$.timeout_sec"
    And the repository is unchanged

  Scenario: a task that names no contract gets a skipped verdict, never a pass
    Given the task args:
      """
      {}
      """
    When the plugin is called
    Then the output at "verdict.skipped" is true
    And the output at "verdict.passed" is false

  Scenario: a contract the engine does not have is refused
    Given the task args:
      """
      {"contract": "nothing.v9", "data": {}}
      """
    When the plugin is called
    Then it fails with a message containing "names no contract"
    And the ledger record's status is "error"
