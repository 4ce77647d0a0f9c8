"""Routing a tool to a plugin in a workspace's decisions (``decisions.dmn``), as a modeler would.

The shipped process runs the plugin that the ``select_plugin`` decision names for a task's tool, in a
worktree when ``needs_worktree`` says so. ``route_tool`` adds the rows that do that for one tool and one
plugin, keeping the model valid and Modeler-clean (a decision table needs no diagram shapes for a rule):
``engine conformance`` uses it to bind a plugin in a copy of the example process (level L3), and a plugin
author can use it to try a new plugin in a workspace before editing the table in Camunda Modeler.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import EngineError


def route_tool(dmn_path: Path, tool: str, plugin: str, *, worktree: bool, label: str = "route") -> None:
    """Add to ``dmn_path`` a ``select_plugin`` rule ``"tool", -, ... -> "plugin"`` (one ``-`` per further
    input column) and, when ``worktree``, a ``needs_worktree`` rule ``"plugin" -> true`` ahead of the
    others (that table's hit policy is FIRST). Rule ids and descriptions start with ``label``; routing the
    same tool to the same plugin again changes nothing."""
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
        return  # routed already: the rules are the same
    columns = len(table.findall("d:input", ns))
    table.append(rule_element(f"{label}_rule_{suffix}", f"{label}: tool {tool} runs plugin {plugin}",
                              [f'"{tool}"'] + ["-"] * (columns - 1), f'"{plugin}"'))
    needs = tree.find(".//d:decision[@id='needs_worktree']/d:decisionTable", ns)
    if worktree and needs is not None:
        first = needs.find("d:rule", ns)
        rule = rule_element(f"{label}_worktree_{suffix}", f"{label}: plugin {plugin} changes the repository",
                            [f'"{plugin}"'] + ["-"] * (len(needs.findall("d:input", ns)) - 1), "true")
        if first is not None:
            first.addprevious(rule)
        else:
            needs.append(rule)
    tree.write(str(dmn_path), xml_declaration=True, encoding="UTF-8")
