Feature: $id transforms a task's text
  Behaviour scenarios (conformance level L2): the steps are the engine's (engine.plugins.scenarios, listed
  in docs/plugin-guide.md); add your own in conformance/features/steps.py.

  Scenario: words are lower-cased and separated by one space
    Given the task args:
      """
      {"text": "  Hello   World "}
      """
    When the plugin is called
    Then the output at "text" is "hello world"
    And the ledger record's status is "completed"

  Scenario: a task without text is refused with the declared code
    Given the task args:
      """
      {}
      """
    When the plugin is called
    Then it fails with code "NO_TEXT"
