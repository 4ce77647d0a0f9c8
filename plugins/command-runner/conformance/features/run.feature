Feature: command-runner runs only what the workspace allows, never through a shell, inside the repository
  Outside a workspace nothing is allowed ([plugins] command_runner_allow is empty): every refusal comes
  before anything runs, in WhatIf mode too, and leaves the repository as it was.

  Scenario: an executable the workspace does not allow is refused, and nothing runs
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the task args:
      """
      {"executable": "git", "argv": ["config", "--file", "written.ini", "a.b", "c"]}
      """
    When the plugin is called
    Then it fails with a message containing "'git' is not an executable this workspace allows (allowed: none)"
    And the ledger record's status is "error"
    And the file "written.ini" does not exist
    And the repository is unchanged

  Scenario: WhatIf checks the same and changes nothing
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And WhatIf mode
    And the task args:
      """
      {"executable": "git", "argv": ["status"]}
      """
    When the operation "run" is called
    Then it fails with a message containing "is not an executable this workspace allows"
    And the repository is unchanged

  Scenario: an absolute path is refused, allowed or not
    Given an empty repository
    And the task args:
      """
      {"executable": "/bin/sh", "argv": ["-c", "touch pwned"]}
      """
    When the plugin is called
    Then it fails with a message containing "is an absolute path, which is refused"
    And the file "pwned" does not exist
    And the repository is unchanged

  Scenario: a path that leads out of the repository is refused
    Given an empty repository
    And the task args:
      """
      {"executable": "tools/../../outside"}
      """
    When the plugin is called
    Then it fails with a message containing "leads outside the repository"

  Scenario: the legacy executor is off unless the workspace turns it on
    Given an empty repository
    And the task args:
      """
      {"executable": "git", "argv": ["status"]}
      """
    When the operation "legacy" is called
    Then it fails with a message containing "the legacy executor is off in this workspace"
    And the repository is unchanged
