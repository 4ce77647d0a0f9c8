"""The GitHub Actions workflows of .github/workflows/: each is valid against GitHub's workflow schema (checked
by the real check-jsonschema, which is shown to refuse a broken one), and every `engine ...` line they run
is a command line the engine's own CLI accepts, so a renamed option fails here, not in CI after a merge."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from engine.cli import cli

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPECTED = ("plugin-validation.yml", "plugin-publish.yml", "compatibility-matrix.yml")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")  # ${{ github.base_ref }}: a word at run time


def workflow_files():
    return sorted(WORKFLOWS.glob("*.y*ml"))


def schema_check(path):
    """check-jsonschema against its copy of GitHub's workflow schema (schemastore), run as a module of the
    interpreter running the tests; falls back to the console script beside it."""
    command = [sys.executable, "-m", "check_jsonschema"]
    if subprocess.run([*command, "--version"], capture_output=True).returncode != 0:
        command = [str(Path(sys.executable).with_name("check-jsonschema"))]
    return subprocess.run([*command, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def triggers(document):
    """The workflow's ``on:``: YAML 1.1 (PyYAML) reads the bare key as true."""
    return document.get("on", document.get(True))


def engine_lines(path):
    """(line number, command line) of every line of a ``run:`` block that runs ``engine``; a line ending in
    a backslash goes on in the next. A ``run: |`` block's lines are numbered as in the file (its first line
    follows the ``|``); any other ``run:`` value is numbered by the line of the key."""
    text = path.read_text(encoding="utf-8")
    found = []

    def runs(node):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == "run" and isinstance(value, yaml.ScalarNode):
                    yield value
                else:
                    yield from runs(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                yield from runs(item)

    for node in runs(yaml.compose(text)):
        first = node.start_mark.line + (2 if node.style == "|" else 1)  # 1-based
        logical, starts = "", None
        for index, line in enumerate(node.value.splitlines()):
            starts = index if starts is None else starts
            logical += line.strip()
            if logical.endswith("\\"):
                logical = logical[:-1] + " "
                continue
            if logical == "engine" or logical.startswith("engine "):
                found.append((first + (starts if node.style == "|" else 0), logical))
            logical, starts = "", None
    return found


def parse(args):
    """Resolve ``args`` (without the leading ``engine``) down to a leaf command and parse its options and
    arguments as the real command would, running nothing; click's error when it does not parse."""
    ctx = cli.make_context("engine", list(args), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        # the subcommand's name and what follows (click 8.2+ keeps the name in _protected_args, 8.1 in
        # protected_args, which 8.2 deprecates)
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        rest = [*protected, *ctx.args]
        if not rest:
            if command.invoke_without_command:
                break
            raise click.UsageError("missing command", ctx=ctx)
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
        command = sub
    return ctx


def test_the_three_workflows_are_there_and_publish_runs_on_plugin_tags():
    assert {p.name for p in workflow_files()} >= set(EXPECTED)
    publish = yaml.safe_load((WORKFLOWS / "plugin-publish.yml").read_text(encoding="utf-8"))
    assert triggers(publish) == {"push": {"tags": ["plugin-*-v*"]}}
    assert publish["permissions"] == {"contents": "write"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_workflow_is_valid_against_the_github_workflow_schema(path):
    proc = schema_check(path)
    assert proc.returncode == 0, f"{path.relative_to(ROOT)}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("broken", [
    pytest.param("name: no runner\non:\n  push:\njobs:\n  build:\n    steps:\n      - run: engine init\n",
                 id="job-without-runs-on"),
    pytest.param("name: misspelt\nonn:\n  push:\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n"
                 "      - run: engine init\n", id="on-misspelt"),
])
def test_the_schema_check_refuses_a_broken_workflow(tmp_path, broken):
    path = tmp_path / "broken.yml"
    path.write_text(broken, encoding="utf-8")
    proc = schema_check(path)
    assert proc.returncode == 1, f"{proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert "broken.yml" in proc.stdout + proc.stderr


def test_the_engine_lines_of_the_workflows_are_found():
    for name in EXPECTED:
        assert engine_lines(WORKFLOWS / name), f"no `engine ...` line in a run: block of {name}"


def test_the_parser_refuses_what_the_cli_refuses():
    parse(["plugin", "pack", "word-count", "--output", "dist"])
    for bad in (["plugin", "pakc", "x"], ["plugin", "pack", "x", "--outptu", "dist"], ["plugin", "pack"]):
        with pytest.raises(click.UsageError):
            parse(bad)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_engine_line_in_a_workflow_is_a_command_the_cli_accepts(path):
    failures = []
    for number, line in engine_lines(path):
        words = shlex.split(EXPRESSION.sub("X", line))
        try:
            parse(words[1:])
        except click.ClickException as e:
            failures.append(f"{path.relative_to(ROOT)}:{number}: `{line}`: {e.format_message()}")
    assert not failures, "\n".join(failures)
