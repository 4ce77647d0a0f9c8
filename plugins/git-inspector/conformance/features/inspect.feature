Feature: git-inspector reads the task's repository and changes nothing in it
  Branch, HEAD and the working tree's changes (status), what changed since a base (diff), the last commits (log).

  Scenario: a fresh repository is clean, on main, with one commit
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the task args:
      """
      {}
      """
    When the operation "status" is called
    Then the output at "repo_state.branch" is "main"
    And the output at "repo_state.dirty" is false
    And the output at "repo_state.changed" is []
    And the output at "repo_state.untracked" is []
    And the output has "repo_state"
    And the ledger record's status is "completed"

  Scenario: the log names the one commit, its author and its date
    Given a repository with the file "app.py" containing:
      """
      print("hello")
      """
    And the task args:
      """
      {"max_count": 3}
      """
    When the operation "log" is called
    Then the output at "log[0].summary" is "fixture"
    And the output at "log[0].author" is "engine fixture"
    And the output at "log[0].date" is "2026-01-01T00:00:00+00:00"

  Scenario: a diff against HEAD of an unchanged repository is empty
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the task args:
      """
      {}
      """
    When the operation "diff" is called
    Then it answers:
      """
      {"diff": {"base": "HEAD", "files": [], "changed_files": 0, "diff_lines": 0}}
      """

  Scenario: WhatIf status writes nothing into the repository
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And WhatIf mode
    And the task args:
      """
      {}
      """
    When the operation "status" is called
    Then the output at "repo_state.dirty" is false
    And the repository is unchanged

  Scenario: a base that names no commit is refused
    Given a repository with the file "README.md" containing:
      """
      # Example
      """
    And the task args:
      """
      {"base": "no-such-branch"}
      """
    When the operation "diff" is called
    Then it fails with a message containing "git diff from no-such-branch failed"
    And the ledger record's status is "error"

  Scenario: a folder that is not a repository is refused
    Given the task args:
      """
      {}
      """
    When the operation "status" is called
    Then it fails with a message containing "is not a git repository"
