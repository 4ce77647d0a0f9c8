Feature: $id writes a file, planning first
  Behaviour scenarios (conformance level L2): the steps are the engine's (engine.plugins.scenarios, listed
  in docs/plugin-guide.md); add your own in conformance/features/steps.py.

  Scenario: WhatIf plans the write and changes nothing
    Given an empty repository
    And WhatIf mode
    And the task args:
      """
      {"path": "notes/hello.txt", "content": "hello"}
      """
    When the plugin is called
    Then the output at "plan.changes" is [{"path": "notes/hello.txt", "action": "create"}]
    And the repository is unchanged

  Scenario: the apply writes what the plan said
    Given an empty repository
    And the task args:
      """
      {"path": "notes/hello.txt", "content": "hello"}
      """
    When the plugin is called
    Then the output at "applied.changes" is [{"path": "notes/hello.txt", "action": "create"}]
    And the file "notes/hello.txt" contains "hello"

  Scenario: a path out of the repository is refused
    Given an empty repository
    And the task args:
      """
      {"path": "../outside.txt", "content": "x"}
      """
    When the plugin is called
    Then it fails with code "PATH_REFUSED"
