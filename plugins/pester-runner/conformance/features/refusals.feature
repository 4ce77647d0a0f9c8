Feature: pester-runner checks the paths it is given before pwsh is ever looked for or started
  These scenarios hold whether or not pwsh and Pester are installed: a refused path fails the call before
  anything runs, and the repository is left as it was.

  Scenario: a test path outside the repository is refused
    Given a repository with the file "tests/App.Tests.ps1" containing:
      """
      Describe 'App' { It 'works' { 1 | Should -Be 1 } }
      """
    And the task args:
      """
      {"paths": ["../elsewhere/tests"]}
      """
    When the plugin is called
    Then it fails with a message containing "is not inside the repository"
    And the ledger record's status is "error"
    And the repository is unchanged

  Scenario: an absolute or drive path is refused
    Given an empty repository
    And the task args:
      """
      {"paths": ["tests", "/etc"]}
      """
    When the operation "check" is called
    Then it fails with a message containing "task.args.paths: '/etc' is not inside the repository"
    And the repository is unchanged

  Scenario: an empty list of paths is refused
    Given an empty repository
    And the task args:
      """
      {"paths": []}
      """
    When the plugin is called
    Then it fails with a message containing "task.args.paths must be a list"
