Feature: git-executor changes the task's repository: commit, branch, merge, with a plan first
  WhatIf plans and writes nothing (no object, ref or file); an apply runs exactly the plan's commands.

  Background:
    Given a repository with the file "README.md" containing:
      """
      # Example
      """

  Scenario: a commit takes every change of the working tree, untracked files included
    Given the file "README.md" is then changed to:
      """
      # Example, changed
      """
    And the file "notes.txt" is then changed to:
      """
      new
      """
    And the task args:
      """
      {"message": "conformance: commit"}
      """
    When the operation "commit" is called on that repository
    Then the output at "plan.changes" is [{"path": "README.md", "action": "modify"}, {"path": "notes.txt", "action": "create"}]
    And the output at "applied.files" is [{"path": "README.md", "action": "modify"}, {"path": "notes.txt", "action": "create"}]
    And the output at "applied.author" is "engine <engine@localhost>"
    And the working tree is clean
    And HEAD's commit message is "conformance: commit"
    And the ledger record's status is "completed"

  Scenario: WhatIf plans the commit and changes nothing
    Given the file "notes.txt" is then changed to:
      """
      new
      """
    And WhatIf mode
    And the task args:
      """
      {"message": "conformance: commit"}
      """
    When the operation "commit" is called on that repository
    Then the output at "plan.changes" is [{"path": "notes.txt", "action": "create"}]
    And the working tree and the refs are as they were before the call
    And HEAD's commit message is "fixture"

  Scenario: a branch is created at HEAD, and WhatIf creates none
    Given WhatIf mode
    And the task args:
      """
      {"name": "feature/login"}
      """
    When the operation "branch" is called
    Then the output at "plan.changes" is []
    And the output at "plan.commands[0][5]" is "feature/login"
    And the branch "feature/login" does not exist
    And the repository is unchanged

  Scenario: a branch ahead of main is merged by a fast-forward
    Given a branch "feature" whose commit adds the file "feature.txt" containing:
      """
      feature
      """
    And the task args:
      """
      {"branch": "feature"}
      """
    When the operation "merge" is called on that repository
    Then the output at "plan.changes" is [{"path": "feature.txt", "action": "create"}]
    And the output at "applied.fast_forward" is true
    And the file "feature.txt" contains "feature"
    And HEAD's commit message is "add feature.txt on feature"

  Scenario: a merge into a working tree with uncommitted changes is refused, and nothing changes
    Given a branch "feature" whose commit adds the file "feature.txt" containing:
      """
      feature
      """
    And the file "README.md" is then changed to:
      """
      # Example, not committed
      """
    And the task args:
      """
      {"branch": "feature"}
      """
    When the operation "merge" is called on that repository
    Then it fails with code "DIRTY_WORKTREE"
    And the working tree and the refs are as they were before the call

  Scenario: a merge that conflicts is refused before anything is touched
    Given a branch "other" whose commit adds the file "README.md" containing:
      """
      # Other
      """
    And a commit on main changes the file "README.md" to:
      """
      # Example, changed on main
      """
    And the task args:
      """
      {"branch": "other"}
      """
    When the operation "merge" is called on that repository
    Then it fails with code "MERGE_CONFLICT"
    And the working tree and the refs are as they were before the call

  Scenario: the current branch cannot be deleted
    Given the task args:
      """
      {"name": "main", "delete": true}
      """
    When the operation "branch" is called
    Then it fails with code "CURRENT_BRANCH"
    And the repository is unchanged

  Scenario: a protected branch cannot be deleted, even when merged and not checked out
    Given a branch "feature" whose commit adds the file "feature.txt" containing:
      """
      feature
      """
    And the branch "feature" is checked out
    And the task args:
      """
      {"name": "main", "delete": true}
      """
    When the operation "branch" is called on that repository
    Then it fails with code "PROTECTED_BRANCH"
    And the branch "main" exists

  Scenario: the engine's checkpoint refs are never touched
    Given the task args:
      """
      {"name": "refs/engine/checkpoints/t1"}
      """
    When the operation "branch" is called
    Then it fails with code "CHECKPOINT_REF"
    And the repository is unchanged
