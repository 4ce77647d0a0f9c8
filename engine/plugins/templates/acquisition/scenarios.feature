Feature: $id reads files of the repository
  Behaviour scenarios (conformance level L2): the steps are the engine's (engine.plugins.scenarios, listed
  in docs/plugin-guide.md); add your own in conformance/features/steps.py.

  Scenario: the files matching the pattern are listed with their sizes
    Given a repository with the file "docs/guide.md" containing:
      """
      # Guide
      """
    And a repository with the file "app.py" containing:
      """
      print("hi")
      """
    And the task args:
      """
      {"pattern": "**/*.md"}
      """
    When the plugin is called
    Then it answers:
      """
      {"files": [{"path": "docs/guide.md", "bytes": 8}], "count": 1}
      """

  Scenario: a pattern leading out of the repository is refused
    Given an empty repository
    And the task args:
      """
      {"pattern": "../*"}
      """
    When the plugin is called
    Then it fails with a message containing "outside the repository"
