"""Where the default models, plugins, contracts and policies are.

They live at the top of the repository (``process/``, ``plugins/``, ``contracts/``, ``policies/``) and a
wheel carries them as ``engine/_bundled/<name>``; this module finds whichever is there.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
NAMES = ("process", "plugins", "contracts", "policies")


def bundled(name: str) -> Path:
    """The folder of the bundled defaults called ``name`` (one of ``NAMES``)."""
    if name not in NAMES:
        raise ValueError(f"unknown bundled folder {name!r}")
    installed = _PACKAGE / "_bundled" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name
