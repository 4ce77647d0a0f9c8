Feature: claude-executor checks the task before claude is ever looked for or started
  These scenarios hold whether or not claude is installed: every refusal comes from the task itself, before
  the plan (which needs claude on PATH) is made, in WhatIf mode too, and changes nothing.

  Scenario: a task without a prompt is refused
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "claude", "args": {}, "files": ["app.py"], "prompt": null}}
      """
    When the plugin is called
    Then it fails with a message containing "claude-executor needs task.prompt"
    And the ledger record's status is "error"
    And the repository is unchanged

  Scenario: WhatIf refuses a blank prompt too, and changes nothing
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And WhatIf mode
    And the input:
      """
      {"task": {"id": "t1", "tool": "claude", "args": {}, "prompt": "  "}}
      """
    When the operation "edit" is called
    Then it fails with a message containing "claude-executor needs task.prompt"
    And the repository is unchanged

  Scenario: a flag the plugin does not allow is refused, with the ones it allows
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "claude", "args": {}, "prompt": "Add a docstring", "flags": ["--yolo"]}}
      """
    When the plugin is called
    Then it fails with a message containing "task.flags: '--yolo' is not allowed for claude; allowed: --model=VALUE"
    And the repository is unchanged

  Scenario: a file outside the repository is refused
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "claude", "args": {}, "prompt": "Add a docstring", "files": ["/etc/passwd"]}}
      """
    When the plugin is called
    Then it fails with a message containing "task.files: '/etc/passwd' is not inside the repository"
    And the repository is unchanged

  Scenario: propose refuses a task without a prompt, and a flag that widens permissions
    Given an empty repository
    And the input:
      """
      {"task": {"id": "t1", "tool": "claude", "args": {"operation": "propose"}, "prompt": "Plan it", "flags": ["--dangerously-skip-permissions"]}}
      """
    When the operation "propose" is called
    Then it fails with a message containing "task.flags: '--dangerously-skip-permissions' is not allowed for claude"
    And the repository is unchanged
