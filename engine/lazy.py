"""A module imported on first use: commands that never touch it do not pay for its import.

``git = lazy("git")`` behaves as ``import git`` from the first attribute read on; under
``TYPE_CHECKING`` modules import it for real, so type checking sees the module itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


def lazy(name: str) -> Any:
    """The module ``name``, imported when first used."""
    return _Lazy(name)
