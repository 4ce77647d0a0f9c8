"""Secrets never stored: the one function every persisted path goes through.

``redact(data)`` returns ``data`` (text, or JSON-like data: dicts, lists, strings) with every secret
replaced by ``[REDACTED:<rule>]``: anything shaped like a common token format (GitHub, AWS, Slack,
private key blocks, ``password=...``-style assignments), and every value the security policy flagged
for this process (``remember``). The ledger, the logs, the run outputs, the what-if records, the
queue's reports and progress files, and the console all write through it; the task file itself stays
as the user wrote it.

A digest of data that held a secret (a ledger record's ``input_digest``) is a SHA-256 of it and does not
reveal it; the data itself is never written.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

# Shapes of the common token formats. Group "secret" is what is replaced; the rest stays readable.
PATTERNS: dict[str, re.Pattern[str]] = {
    "github_token": re.compile(r"(?P<secret>\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{20,255}))"),
    "aws_access_key_id": re.compile(r"(?P<secret>\b(?:AKIA|ASIA)[0-9A-Z]{16})\b"),
    "aws_secret_access_key": re.compile(
        r"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})"),
    "private_key": re.compile(
        r"(?P<secret>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$))"),
    "slack_token": re.compile(r"(?P<secret>\bxox[abposr]-[A-Za-z0-9-]{10,})"),
    "openai_key": re.compile(r"(?P<secret>\bsk-(?:proj-)?[A-Za-z0-9_-]{32,})"),
    "credential_assignment": re.compile(
        r"\b(?i:password|passwd|secret|token|api[_-]?key|access[_-]?key)[\"']?\s*[:=]\s*[\"']?"
        r"(?P<secret>[^\s\"',;]{12,})"),
}
# One search tells whether a string needs any work: most strings written (ids, digests, names) do not.
_ANY = re.compile("|".join(f"(?:{p.pattern.replace('(?P<secret>', '(?:')})" for p in PATTERNS.values()))
MIN_REMEMBERED = 6  # a flagged value shorter than this is not replaced everywhere (it would mangle text)
SEEN_MAX, SEEN_MAX_LENGTH = 20_000, 512  # the redacted strings remembered, and the longest one remembered


class Redactor:
    """The patterns, plus the exact values the security policy flagged (thread-safe)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()
        # text -> its redacted form, for the strings written again and again (keys, ids, names, digests);
        # emptied whenever the values to replace change
        self._seen: dict[str, str] = {}

    def remember(self, value: str, rule: str) -> None:
        """Replace ``value`` wherever it appears from now on (a secret the policy found in a task)."""
        if isinstance(value, str) and len(value) >= MIN_REMEMBERED:
            with self._lock:
                if self._values.get(value) != rule:
                    self._values[value] = rule
                    self._seen = {}

    def forget_all(self) -> None:
        with self._lock:
            self._values.clear()
            self._seen = {}

    def text(self, text: str) -> str:
        seen = self._seen
        done = seen.get(text)
        if done is not None:
            return done
        done = self._text(text)
        if len(text) <= SEEN_MAX_LENGTH:
            if len(seen) >= SEEN_MAX:
                seen.clear()
            seen[text] = done
        return done

    def _text(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values.items(), key=lambda kv: -len(kv[0])) if self._values else []
        for value, rule in values:
            if value in text:
                text = text.replace(value, f"[REDACTED:{rule}]")
        if not _ANY.search(text):
            return text
        for rule, pattern in PATTERNS.items():
            if pattern.search(text):
                text = pattern.sub(functools.partial(_replace, rule=rule), text)
        return text

    def data(self, data: Any) -> Any:
        """``data`` with every string in it (keys too) redacted; other values as they are."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.data(v) for v in data]
        return data


def _replace(match: re.Match[str], rule: str) -> str:
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + f"[REDACTED:{rule}]" + whole[end - offset:]


REDACTOR = Redactor()


def redact(data: Any) -> Any:
    """``data`` with every secret replaced by ``[REDACTED:<rule>]`` (see the module docstring)."""
    return REDACTOR.data(data)


def remember(value: str, rule: str) -> None:
    """From now on, replace ``value`` wherever this process writes it."""
    REDACTOR.remember(value, rule)


def structlog_processor(logger: Any, method_name: str, event_dict: Any) -> Any:
    """Redacts every log event before it is rendered."""
    return REDACTOR.data(dict(event_dict))
