"""Secrets never stored: the shapes recognised and the values remembered, in text and in data."""

import pytest

from engine.redact import Redactor

GITHUB = "ghp_" + "A1b2C3d4" * 5
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(("text", "rule"), [
    (f"push with {GITHUB} please", "github_token"),
    ("github_pat_" + "x" * 40, "github_token"),
    (f"key {AWS_ID} here", "aws_access_key_id"),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key"),
    ('AWS_SECRET_ACCESS_KEY: "' + AWS_SECRET + '"', "aws_secret_access_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----", "private_key"),
    ("xoxb-123456789012-abcdefghij", "slack_token"),
    ("db password=correct-horse-battery", "credential_assignment"),
    ("sk-proj-" + "a" * 40, "openai_key"),
])
def test_each_shape_is_replaced_and_the_rest_of_the_text_kept(text, rule):
    out = Redactor().text(text)
    assert f"[REDACTED:{rule}]" in out
    for secret in (GITHUB, AWS_ID, AWS_SECRET, "b3BlbnNzaC1rZXk", "correct-horse-battery", "abcdefghij", "a" * 40):
        if secret in text:
            assert secret not in out


def test_ordinary_text_ids_and_digests_are_untouched():
    r = Redactor()
    for text in ("git-inspector", "a" * 64, "sha256:" + "f" * 64, "task token count is 3", "password reset flow",
                 "refs/engine/checkpoints/run-1/t1/Task_execute-1", "AKIA is a prefix"):
        assert r.text(text) == text


def test_remembered_values_are_replaced_everywhere_in_data_keys_included():
    r = Redactor()
    r.remember("my-flagged-value", "security.custom")
    r.remember("abc", "too short to replace safely")
    data = {"prompt": "use my-flagged-value now", "my-flagged-value": [1, "x my-flagged-value"], "n": 3,
            "short": "abc"}
    assert r.data(data) == {"prompt": "use [REDACTED:security.custom] now",
                            "[REDACTED:security.custom]": [1, "x [REDACTED:security.custom]"], "n": 3,
                            "short": "abc"}
