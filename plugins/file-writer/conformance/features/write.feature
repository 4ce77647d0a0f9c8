Feature: file-writer writes and deletes files in the task's repository, and nowhere else
  The plan lists exactly what the apply then does; WhatIf plans and writes nothing.

  Scenario: new files are created, with their folders
    Given an empty repository
    And the task args:
      """
      {"files": [{"path": "docs/notes.md", "content": "# Notes"}]}
      """
    When the plugin is called
    Then the output at "plan.changes" is [{"path": "docs/notes.md", "action": "create"}]
    And the output at "applied.changes" is [{"path": "docs/notes.md", "action": "create"}]
    And the file "docs/notes.md" contains "# Notes"
    And the ledger record's status is "completed"

  Scenario: a file that already has the content is no change, a changed one is modified, a deleted one goes
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And a repository with the file "old.txt" containing:
      """
      old
      """
    And the task args:
      """
      {"files": [{"path": "README.md", "content": "# Example\n"}, {"path": "app.py", "content": "print(1)\n"},
                 {"path": "old.txt", "delete": true}]}
      """
    When the operation "write" is called
    Then the output at "plan.changes" is [{"path": "app.py", "action": "create"}, {"path": "old.txt", "action": "delete"}]
    And the file "app.py" contains "print(1)"
    And the file "old.txt" does not exist

  Scenario: WhatIf plans the change and writes nothing
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And WhatIf mode
    And the task args:
      """
      {"files": [{"path": "README.md", "content": "changed"}, {"path": "new.txt", "content": "new"}]}
      """
    When the plugin is called
    Then the output at "plan.changes" is [{"path": "README.md", "action": "modify"}, {"path": "new.txt", "action": "create"}]
    And the file "new.txt" does not exist
    And the repository is unchanged

  Scenario: one path outside the repository refuses the whole call, and nothing is written
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the task args:
      """
      {"files": [{"path": "ok.txt", "content": "fine"}, {"path": "../escape.txt", "content": "no"}]}
      """
    When the plugin is called
    Then it fails with a message containing "is not a file inside the repository"
    And the ledger record's status is "error"
    And the file "ok.txt" does not exist
    And the repository is unchanged

  Scenario: files under .git are refused, even in WhatIf mode
    Given an empty repository
    And WhatIf mode
    And the task args:
      """
      {"files": [{"path": ".git/hooks/pre-commit", "content": "#!/bin/sh"}]}
      """
    When the plugin is called
    Then it fails with a message containing "files under .git are git's"
    And the repository is unchanged
