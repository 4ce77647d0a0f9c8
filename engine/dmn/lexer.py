"""FEEL tokens.

Names in FEEL may contain spaces (``Applicant Age``, ``list contains``): the lexer yields one token per
word and the parser joins adjacent name words. ``date and time`` contains the keyword ``and``, so the
lexer recognises it (and ``years and months duration``, ``index of``) as a single name when a ``(``
follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset({
    "and", "or", "if", "then", "else", "for", "in", "return", "some", "every", "satisfies",
    "between", "instance", "of", "true", "false", "null", "function",
})


class FeelSyntaxError(Exception):
    """A FEEL text that does not parse. ``column`` is 1-based within the text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"{self.message} (at column {self.column})"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number" | "string" | "name" | "keyword" | "op" | "eof"
    text: str
    pos: int  # 0-based offset of the first character
    end: int  # 0-based offset after the last character
    value: object = None


_SPACE = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)+", re.S)
# digits, a fraction, an exponent (``1.23e4``, ``1.23e-4``: the TCK's FEEL reads them, TCK 0068)
_NUMBER = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
# a name starts with a letter, ``_`` or a character beyond the basic plane (``🐎``, TCK 0083), and goes on
# with those and digits
_WORD = re.compile(r"(?:[^\W\d]|[\U00010000-\U000EFFFF])(?:\w|[\U00010000-\U000EFFFF])*|\?")
# built-in function names that contain a keyword ("and", "of"): one name when a "(" follows
_KEYWORD_NAMES = re.compile(r"(date\s+and\s+time|years\s+and\s+months\s+duration|index\s+of)(?=\s*\()")
_OPS = ("..", "<=", ">=", "!=", "**", "<", ">", "=", "+", "-", "*", "/", "(", ")", "[", "]", "{", "}",
        ",", ".", ":", "@", "'")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "'": "'", "/": "/", "b": "\b",
            "f": "\f"}


def _string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
                code = int(text[i + 2:i + 6], 16)
                low = text[i + 6:i + 12]
                if 0xD800 <= code < 0xDC00 and re.fullmatch(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}", low):
                    # a UTF-16 surrogate pair (``"\uD83D\uDCA9"``) is one character
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)
                    i += 6
                out.append(chr(code))
                i += 6
                continue
            if nxt == "U" and re.fullmatch(r"[0-9a-fA-F]{6}", text[i + 2:i + 8]):
                out.append(chr(int(text[i + 2:i + 8], 16)))
                i += 8
                continue
        out.append(c)
        i += 1
    raise FeelSyntaxError("string is not closed: a '\"' is missing", start + 1)


def tokenize(text: str) -> list[Token]:
    """Split FEEL text into tokens; raises :class:`FeelSyntaxError` at the first character it cannot read."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
        if i >= n:
            tokens.append(Token("eof", "", n, n))
            return tokens
        c = text[i]
        if c == '"':
            value, end = _string(text, i)
            tokens.append(Token("string", text[i:end], i, end, value))
            i = end
            continue
        if c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise FeelSyntaxError("quoted name is not closed: a '`' is missing", i + 1)
            tokens.append(Token("name", text[i + 1:end], i, end + 1, "quoted"))
            i = end + 1
            continue
        prev = tokens[-1] if tokens else None
        after_value = prev is not None and (prev.kind in ("name", "number", "string")
                                            or prev.text in (")", "]", "}"))
        if c.isdigit() or (c == "." and not after_value and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            tokens.append(Token("number", m.group(), i, m.end()))
            i = m.end()
            continue
        m = _KEYWORD_NAMES.match(text, i)
        if m:
            tokens.append(Token("name", " ".join(m.group().split()), i, m.end(), "builtin"))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        if m:
            word = m.group()
            kind = "keyword" if word in KEYWORDS else "name"
            tokens.append(Token(kind, word, i, m.end()))
            i = m.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, i, i + len(op)))
                i += len(op)
                break
        else:
            raise FeelSyntaxError(f"unexpected character {c!r}", i + 1)
