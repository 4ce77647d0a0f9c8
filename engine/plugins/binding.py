"""Routing a tool to a plugin in a workspace's decisions (``decisions.dmn``), as a modeler would.

The shipped process runs the plugin that the ``select_plugin`` decision names for a task's tool, in a
worktree when ``needs_worktree`` says so. ``route_tool`` adds the rows that do that for one tool and one
plugin, keeping the model valid and Modeler-clean (a decision table needs no diagram shapes for a rule):
``engine conformance`` uses it to bind a plugin in a copy of the example process (level L3), and a plugin
author can use it to try a new plugin in a workspace before editing the table in Camunda Modeler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError, ModelError, PluginLoadError, Problem, UsageError

if TYPE_CHECKING:
    from engine.workspace import Workspace

@dataclass(frozen=True)
class Routed:
    """What ``route`` did: the rules it added to ``file`` (none when the tool was routed there already)."""

    plugin: str
    tool: str
    file: Path
    added: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "tool": self.tool, "file": str(self.file), "added": self.added}


def route(ws: Workspace, plugin_id: str, tool: str) -> Routed:
    """Route tasks whose tool is ``tool`` to the installed plugin ``plugin_id`` in the workspace's
    ``decisions.dmn`` (``route_tool``; a worktree for a state-change plugin), then load the models as
    ``engine run`` would: a model that no longer loads is put back as it was and the problems raised.
    Refused: an unknown plugin (``PluginLoadError``), a tool a rule already routes to another plugin
    (``UsageError``, naming the rule and its line: change it in Camunda Modeler instead)."""
    from lxml import etree

    from engine.kernel import load_registry
    from engine.process import load_models

    registry = load_registry(ws)
    plugin = registry.get(plugin_id)
    if plugin is None:
        hint = registry.suggest(plugin_id)
        raise PluginLoadError(f"no plugin {plugin_id!r} is installed" + (f"; did you mean {hint!r}?" if hint else ""),
                              plugin=plugin_id)
    path = ws.dmn
    before = path.read_bytes()
    tree = etree.parse(str(path))
    ns = {"d": tree.getroot().nsmap[None]}
    wanted = f'"{tool}"'
    for rule in tree.iterfind(".//d:decision[@id='select_plugin']/d:decisionTable/d:rule", ns):
        entries = rule.findall("d:inputEntry/d:text", ns)
        output = rule.findtext("d:outputEntry/d:text", default="", namespaces=ns).strip()
        if entries and (entries[0].text or "").strip() == wanted:
            if output == f'"{plugin.id}"':
                return Routed(plugin.id, tool, path, [])
            raise UsageError(f"tool {tool!r} is routed to {output} by rule {rule.get('id')} of select_plugin "
                             f"({path}:{rule.sourceline}); change that rule in Camunda Modeler, or route another "
                             "tool", problems=[Problem(f"rule {rule.get('id')} routes {tool!r} to {output}",
                                                       file=str(path), line=rule.sourceline)])
    added = route_tool(path, tool, plugin.id, worktree=plugin.spec.category == "state_change", label="route")
    try:
        load_models(ws.bpmn, path, registry)
    except ModelError:
        path.write_bytes(before)
        raise
    return Routed(plugin.id, tool, path, added)


def route_tool(dmn_path: Path, tool: str, plugin: str, *, worktree: bool, label: str = "route") -> list[str]:
    """Add to ``dmn_path`` a ``select_plugin`` rule ``"tool", -, ... -> "plugin"`` (one ``-`` per further
    input column) and, when ``worktree``, a ``needs_worktree`` rule ``"plugin" -> true`` ahead of the
    others (that table's hit policy is FIRST). Rule ids and descriptions start with ``label``; routing the
    same tool to the same plugin again changes nothing. Returns the ids of the rules added."""
    from lxml import etree

    tree = etree.parse(str(dmn_path))
    d = tree.getroot().nsmap[None]
    ns = {"d": d}
    suffix = re.sub(r"\W", "_", f"{plugin}_{tool}")

    def rule_element(rule_id: str, description: str, inputs: list[str], output: str) -> etree._Element:
        rule = etree.Element(f"{{{d}}}rule", id=rule_id)
        etree.SubElement(rule, f"{{{d}}}description").text = description
        cells = [("inputEntry", text) for text in inputs] + [("outputEntry", output)]
        for index, (kind, text) in enumerate(cells):
            entry = etree.SubElement(rule, f"{{{d}}}{kind}", id=f"{rule_id}_{kind}_{index}")
            etree.SubElement(entry, f"{{{d}}}text").text = text
        return rule

    table = tree.find(".//d:decision[@id='select_plugin']/d:decisionTable", ns)
    if table is None:
        raise EngineError(f"{dmn_path}: no decision table select_plugin to route tool {tool!r} in")
    if tree.find(f".//d:rule[@id='{label}_rule_{suffix}']", ns) is not None:
        return []  # routed already: the rules are the same
    added = [f"{label}_rule_{suffix}"]
    columns = len(table.findall("d:input", ns))
    table.append(rule_element(added[0], f"{label}: tool {tool} runs plugin {plugin}",
                              [f'"{tool}"'] + ["-"] * (columns - 1), f'"{plugin}"'))
    needs = tree.find(".//d:decision[@id='needs_worktree']/d:decisionTable", ns)
    if worktree and needs is not None:
        added.append(f"{label}_worktree_{suffix}")
        first = needs.find("d:rule", ns)
        rule = rule_element(added[1], f"{label}: plugin {plugin} changes the repository",
                            [f'"{plugin}"'] + ["-"] * (len(needs.findall("d:input", ns)) - 1), "true")
        if first is not None:
            first.addprevious(rule)
        else:
            needs.append(rule)
    from engine.durable import write_durably

    write_durably(dmn_path, etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
    return added
