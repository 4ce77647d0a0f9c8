"""Plugins: manifest and spec validation, discovery, and dispatch."""

from engine.plugins.dispatch import dispatch
from engine.plugins.loader import LoadedPlugin, Registry, load_plugin, source_digest

__all__ = ["LoadedPlugin", "Registry", "dispatch", "load_plugin", "source_digest"]
