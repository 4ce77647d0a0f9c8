Feature: codex-executor checks the task before codex is ever looked for or started
  These scenarios hold whether or not codex is installed: every refusal comes from the task itself, before
  the plan (which needs codex on PATH) is made, in WhatIf mode too, and changes nothing.

  Scenario: a task without a prompt is refused
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "codex", "args": {}, "files": ["app.py"], "prompt": null}}
      """
    When the plugin is called
    Then it fails with a message containing "codex-executor needs task.prompt"
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
      {"task": {"id": "t1", "tool": "codex", "args": {}, "prompt": "  "}}
      """
    When the operation "edit" is called
    Then it fails with a message containing "codex-executor needs task.prompt"
    And the repository is unchanged

  Scenario: a flag the plugin does not allow is refused, with the ones it allows
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "codex", "args": {}, "prompt": "Add a docstring", "flags": ["--yolo"]}}
      """
    When the plugin is called
    Then it fails with a message containing "task.flags: '--yolo' is not allowed for codex; allowed: --model=VALUE"
    And the repository is unchanged

  Scenario: a file outside the repository is refused
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the input:
      """
      {"task": {"id": "t1", "tool": "codex", "args": {}, "prompt": "Add a docstring", "files": ["/etc/passwd"]}}
      """
    When the plugin is called
    Then it fails with a message containing "task.files: '/etc/passwd' is not inside the repository"
    And the repository is unchanged
