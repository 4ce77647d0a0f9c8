Feature: task-parser normalises a task
  A task as a user writes it comes out in the one shape the process reads.

  Scenario: the tool is lower-cased and defaults are filled in
    Given the input:
      """
      {"task": {"id": "t1", "tool": "Git", "args": {"operation": "status"}}}
      """
    When the plugin is called
    Then the output at "task.tool" is "git"
    And the output at "task.repo" is "."
    And the output at "task.retry.max_retries" is 0
    And the ledger record's status is "completed"

  Scenario: tags are de-duplicated and sorted, file paths made relative
    Given the input:
      """
      {"task": {"id": "t2", "tool": "ruff", "tags": ["b", "a", "b"], "files": ["./src/app.py"]}}
      """
    When the operation "normalize" is called
    Then the output at "task.tags" is ["a", "b"]
    And the output at "task.files" is ["src/app.py"]

  Scenario: a task without an id is refused with what is missing
    Given the input:
      """
      {"task": {"tool": "git"}}
      """
    When the plugin is called
    Then it fails with a message containing "id"
    And the ledger record's status is "error"
