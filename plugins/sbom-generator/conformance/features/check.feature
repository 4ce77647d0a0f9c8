Feature: sbom-generator makes a CycloneDX SBOM of the repository's Python dependencies and checks its policy
  A denied package or licence fails the verdict with a finding naming the package; nothing is written.

  Scenario: the declared dependencies become the SBOM's components, and none denied passes
    Given a repository with the file "requirements.txt" containing:
      """
      requests==2.31.0
      """
    And a repository with the file "pyproject.toml" containing:
      """
      [project]
      name = "demo-app"
      version = "1.2.0"
      dependencies = ["click>=8"]
      """
    And the task args:
      """
      {}
      """
    When the plugin is called
    Then the output at "verdict.passed" is true
    And the output at "sbom.bomFormat" is "CycloneDX"
    And the output at "sbom.specVersion" is "1.6"
    And the output at "sbom.metadata.component.name" is "demo-app"
    And the output at "sbom.metadata.timestamp" is "2026-01-01T00:00:00+00:00"
    And the output at "verdict.counts.components" is 2
    And the output at "sbom.components[1].purl" is "pkg:pypi/requests@2.31.0"
    And the repository is unchanged

  Scenario: a package the task denies fails the verdict, with its file and line
    Given a repository with the file "requirements.txt" containing:
      """
      urllib3==1.26.18
      requests==2.31.0
      """
    And the task args:
      """
      {"deny_packages": ["urllib3<2"]}
      """
    When the operation "check" is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.findings[0].rule" is "denied-package"
    And the output at "verdict.findings[0].file" is "requirements.txt"
    And the output at "verdict.findings[0].line" is 1
    And the output at "verdict.counts.denied_packages" is 1

  Scenario: the workspace's policy, passed by the quality gate, is applied too
    Given a repository with the file "requirements.txt" containing:
      """
      requests==2.31.0
      """
    And the input:
      """
      {"task": {"id": "t1", "args": {}}, "files": null, "policy": {"deny_packages": ["requests"], "deny_licenses": []}}
      """
    When the plugin is called
    Then the output at "verdict.passed" is false
    And the output at "verdict.counts.denied_packages" is 1

  Scenario: a deny rule that is not a requirement is refused
    Given an empty repository
    And the task args:
      """
      {"deny_packages": ["not a requirement!"]}
      """
    When the plugin is called
    Then it fails with a message containing "is not a package name or requirement"
    And the ledger record's status is "error"

  Scenario: a pyproject.toml that is not valid TOML is refused, not skipped over
    Given a repository with the file "pyproject.toml" containing:
      """
      [project
      name = "broken"
      """
    And the task args:
      """
      {}
      """
    When the plugin is called
    Then it fails with a message containing "pyproject.toml is not valid TOML"
    And the repository is unchanged
