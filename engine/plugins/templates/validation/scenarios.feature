Feature: $id checks the changed files
  Behaviour scenarios (conformance level L2): the steps are the engine's (engine.plugins.scenarios, listed
  in docs/plugin-guide.md); add your own in conformance/features/steps.py.

  Scenario: a TODO line is a finding and fails the check
    Given a repository with the file "app.py" containing:
      """
      x = 1  # TODO remove
      """
    And the input:
      """
      {"task": {"id": "t1"}, "files": ["app.py"]}
      """
    When the plugin is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.findings[0].line" is 1

  Scenario: a clean file passes
    Given a repository with the file "app.py" containing:
      """
      x = 1
      """
    And the input:
      """
      {"task": {"id": "t1"}, "files": ["app.py"]}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
