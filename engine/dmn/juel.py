"""JUEL (Camunda 7) and Python (SpiffWorkflow) spellings of comparisons and logic, in FEEL.

Camunda 7 models carry JUEL in ``${...}`` (gateway conditions, and DMN cells marked
``expressionLanguage="juel"``); SpiffWorkflow models carry Python. Their simple comparisons differ from
FEEL only in spelling, so those are rewritten and the result is compiled as FEEL. Anything beyond
spelling (method calls, ``execution.getVariable``) is left for the FEEL parser to reject, with its
own error message.
"""

from __future__ import annotations

import re

JUEL_LANGUAGES = frozenset({"juel", "http://camunda.org/schema/1.0/dmn/juel", "python"})

_JUEL_OPERATORS = {"==": "=", "&&": " and ", "||": " or ", " eq ": " = ", " ne ": " != "}


def from_juel(text: str) -> str:
    """The operators Camunda 7 (JUEL) and SpiffWorkflow (Python) models use, in FEEL spelling.

    ``a == 'x' && !done`` becomes ``a = "x" and not(done)``. Only the operators and quotes that the
    three languages spell differently are rewritten, outside string literals; anything else is left
    for the FEEL parser to accept or reject.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":  # a string literal, copied with FEEL's double quotes
            end = text.find(ch, i + 1)
            end = len(text) if end < 0 else end
            out.append('"' + text[i + 1:end].replace('"', '\\"') + '"')
            i = end + 1
            continue
        for juel, feel in _JUEL_OPERATORS.items():
            if text.startswith(juel, i):
                out.append(feel)
                i += len(juel)
                break
        else:
            if ch == "!" and not text.startswith("!=", i):
                operand = re.match(r"\s*(\([^()]*\)|[A-Za-z_][\w.]*)", text[i + 1:])
                if operand:
                    inner = operand.group(1)
                    inner = inner[1:-1] if inner.startswith("(") else inner
                    out.append(f"not({from_juel(inner)})")
                    i += 1 + operand.end()
                    continue
            out.append(ch)
            i += 1
    return "".join(out)


def juel_cell_as_feel(text: str) -> str:
    """A JUEL DMN cell (``${amount > 5}``) as the FEEL the engine compiles."""
    body = text.strip()
    if body.startswith("${") and body.endswith("}") or body.startswith("#{") and body.endswith("}"):
        body = body[2:-1].strip()
    return from_juel(body)
