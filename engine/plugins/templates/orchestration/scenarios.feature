Feature: $id names the steps a task takes
  Behaviour scenarios (conformance level L2): the steps are the engine's (engine.plugins.scenarios, listed
  in docs/plugin-guide.md); add your own in conformance/features/steps.py.

  Scenario: the steps are named in order
    Given the task args:
      """
      {"steps": ["git-inspector.status", "ruff-checker.check"]}
      """
    When the plugin is called
    Then the output at "next" is ["git-inspector.status", "ruff-checker.check"]

  Scenario: a step that is no topic is refused
    Given the task args:
      """
      {"steps": ["not a topic"]}
      """
    When the plugin is called
    Then it fails with code "BAD_STEP"
