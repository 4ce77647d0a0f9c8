"""Loading and checking the process models: ``orchestration.bpmn`` and ``decisions.dmn``.

``load_models`` refuses a bad model before any task is claimed: it reports every problem at once, each
naming the file, the element id and the line. It checks XML syntax, the BPMN 2.0 XSD (and the DMN XSD
for the versions SpiffWorkflow ships), diagram interchange for every flow node and sequence flow, that
every ``camunda:topic`` names an installed plugin (with a did-you-mean), that every
``camunda:decisionRef`` names a decision, that every DMN cell compiles, and that SpiffWorkflow accepts
the process.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import XSD_PATH as BPMN_XSD
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from engine import dmn
from engine.errors import ModelError, Problem
from engine.plugins.loader import Registry
from engine.process.expressions import Compiled, FeelSyntaxError, compile_feel, is_expression
from engine.process.parser import CAMUNDA, EngineParser
from engine.process.timers import on_clock

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DISPATCH_TOPIC = "dispatch"
OUTCOMES = ("done", "failed", "quarantine")

# Flow nodes that Camunda Modeler draws as shapes; every one needs a BPMNShape.
FLOW_NODES = {
    "task", "serviceTask", "sendTask", "receiveTask", "userTask", "manualTask", "businessRuleTask",
    "scriptTask", "callActivity", "subProcess", "transaction", "adHocSubProcess", "startEvent", "endEvent",
    "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent", "exclusiveGateway",
    "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway",
}


@dataclass(frozen=True)
class Models:
    """Parsed, checked models: what a run executes and what its ledger entries name."""

    bpmn_path: Path
    dmn_path: Path
    bpmn_hash: str
    dmn_hash: str
    process_id: str
    spec: Any
    subprocess_specs: dict[str, Any]
    decisions: dmn.DecisionModel
    end_outcomes: dict[str, str]
    expressions: dict[str, Compiled]  # FEEL text of conditions and timers -> compiled, filled at load
    # error boundary events, by the id of the activity they are attached to: (errorCode or None for any,
    # camunda:errorCodeVariable, camunda:errorMessageVariable)
    error_boundaries: dict[str, list[tuple[str | None, str | None, str | None]]] = field(default_factory=dict)
    called_files: tuple[Path, ...] = ()  # the other .bpmn files whose processes call activities reach

    @property
    def hashes(self) -> dict[str, str]:
        return {"bpmn": self.bpmn_hash, "dmn": self.dmn_hash}


# Flow nodes that would wait forever in `engine run`: nobody completes them.
WAITS_FOREVER = {"userTask", "manualTask", "receiveTask"}


@functools.cache
def _schema(xsd_path: str) -> Any:
    """The compiled XSD, or None when the schema itself does not compile (SpiffWorkflow 3.2.0's DMN 1.2
    schema imports a DI schema under the wrong namespace); such files are still checked by engine.dmn."""
    try:
        return etree.XMLSchema(etree.parse(xsd_path))
    except etree.XMLSchemaParseError:
        return None


def _q(local: str, ns: str = BPMN_NS) -> str:
    return f"{{{ns}}}{local}"


def _describe(node: Any) -> str:
    kind = etree.QName(node).localname
    name = " ".join((node.get("name") or "").split())  # a name wrapped in the Modeler: one line here
    ident = node.get("id") or "(no id)"
    return f"{kind} {ident}" + (f" '{name}'" if name else "")


class _Checker:
    def __init__(self, bpmn: Path, dmn_path: Path, registry: Registry) -> None:
        self.bpmn, self.dmn_path, self.registry = bpmn, dmn_path, registry
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # the DMN file's load warnings: what is null at evaluation

    def add(self, message: str, file: Path, node: Any = None, line: int | None = None) -> None:
        self.problems.append(Problem(message, file=str(file), line=line or (node.sourceline if node is not None
                                                                             else None),
                                     element=_describe(node) if node is not None else None))

    def parse_xml(self, path: Path) -> Any:
        try:
            return etree.parse(str(path), etree.XMLParser(remove_blank_text=False, resolve_entities=False))
        except OSError as e:
            self.add(f"cannot read the file: {e}", path)
        except etree.XMLSyntaxError as e:
            self.add(f"invalid XML: {e.msg}", path, line=e.lineno)
        return None

    def xsd(self, tree: Any, xsd_path: str, path: Path) -> None:
        schema = _schema(xsd_path)
        if schema is not None and not schema.validate(tree):
            for err in schema.error_log:
                self.add(f"XSD: {err.message}", path, line=err.line)

    def check_bpmn(self, tree: Any) -> list[Any]:
        root = tree.getroot()
        if root.tag != _q("definitions"):
            self.add(f"not a BPMN 2.0 file: root element is {root.tag}", self.bpmn, line=root.sourceline)
            return []
        self.xsd(tree, BPMN_XSD, self.bpmn)
        shapes = {s.get("bpmnElement") for s in root.iter(_q("BPMNShape", BPMNDI_NS))}
        edges = {e.get("bpmnElement") for e in root.iter(_q("BPMNEdge", BPMNDI_NS))}
        if not list(root.iter(_q("BPMNDiagram", BPMNDI_NS))):
            self.add("has no BPMNDiagram: Camunda Modeler cannot display it", self.bpmn, line=root.sourceline)
        processes: list[Any] = root.findall(_q("process"))
        for process in processes:
            for node in process.iter():
                if not isinstance(node.tag, str) or not node.tag.startswith("{" + BPMN_NS):
                    continue
                local = etree.QName(node).localname
                if local in FLOW_NODES and node.get("id") not in shapes:
                    self.add("has no BPMNShape (diagram interchange): it is invisible in Camunda Modeler",
                             self.bpmn, node)
                if local == "sequenceFlow" and node.get("id") not in edges:
                    self.add("has no BPMNEdge (diagram interchange): it is invisible in Camunda Modeler",
                             self.bpmn, node)
                if local == "serviceTask":
                    self.check_topic(node)
                waits = local in ("intermediateCatchEvent", "receiveTask", "boundaryEvent") and any(
                    etree.QName(d).localname in ("messageEventDefinition", "signalEventDefinition")
                    for d in node if isinstance(d.tag, str))
                if local in WAITS_FOREVER or waits:
                    self.add("waits for a person, a message or a signal, which engine run never delivers: "
                             "model it as a service task or a timer", self.bpmn, node)
                self.check_runnable(node, local)
            self.check_flows(process)
            self.check_ids(process)
        return processes

    def check_runnable(self, node: Any, local: str) -> None:
        """What passes the XSD but cannot run as drawn: another script language, a start that waits for
        something, a step with nowhere to go, Camunda's Java-engine features (listeners, job retries)."""
        if local == "complexGateway":
            self.add("is a complex gateway, which engine run cannot run: use an inclusive gateway with a "
                     "condition on each outgoing flow", self.bpmn, node)
        for extension in node.findall(_q("extensionElements")):
            for item in extension:
                kind = etree.QName(item).localname if isinstance(item.tag, str) else ""
                if kind in ("executionListener", "taskListener"):
                    self.add(f"has a camunda:{kind}: engine run runs no listeners (Java classes, expressions or "
                             "scripts): make it a step of its own (a service or script task)", self.bpmn, node,
                             line=item.sourceline)
                elif kind == "failedJobRetryTimeCycle":
                    self.add("has camunda:failedJobRetryTimeCycle: engine run retries a failed plugin call as the "
                             "retry_policy decision says, not by job retries: remove it", self.bpmn, node,
                             line=item.sourceline)
        if local == "scriptTask":
            language = (node.get("scriptFormat") or "python").strip().lower()
            if language not in ("python", "py", "python3"):
                self.add(f"has scriptFormat '{node.get('scriptFormat')}': engine run executes Python scripts only",
                         self.bpmn, node)
        if local == "startEvent" and node.getparent() is not None \
                and etree.QName(node.getparent()).localname == "process":
            kinds = [etree.QName(d).localname for d in node if isinstance(d.tag, str)
                     and etree.QName(d).localname.endswith("EventDefinition")]
            if any(k != "timerEventDefinition" for k in kinds):
                self.add(f"is a {kinds[0].removesuffix('EventDefinition')} start event: engine run starts every task "
                         "at the process's none (or timer) start event", self.bpmn, node)
        if local in FLOW_NODES and local not in ("endEvent", "boundaryEvent", "startEvent") \
                and node.find(_q("outgoing")) is None and node.get("id"):
            parent = node.getparent()
            in_event_subprocess = parent is not None and parent.get("triggeredByEvent") == "true"
            if not in_event_subprocess:
                self.add("has no outgoing sequence flow: a task that reaches it stops without an end event "
                         "(connect it, or end the path with an end event)", self.bpmn, node)

    def check_ids(self, process: Any) -> None:
        """SpiffWorkflow names its own steps of every process Start, End and <process id>.EndJoin: an element
        with one of those ids silently replaces one of them (the process then cannot start, or end)."""
        reserved = {"Start", "End", "Root", f"{process.get('id')}.EndJoin"}
        for node in process.iter():
            if isinstance(node.tag, str) and node.get("id") in reserved:
                self.add(f"has the id '{node.get('id')}', which SpiffWorkflow uses for a step of its own: "
                         "rename it (Camunda Modeler's ids such as Event_0x1y2z3 are safe)", self.bpmn, node)

    def check_flows(self, process: Any) -> None:
        """Every sequence flow connects two elements that exist (named by flow id and line)."""
        ids = {n.get("id") for n in process.iter() if isinstance(n.tag, str) and n.get("id")}
        for flow in process.iter(_q("sequenceFlow")):
            for end in ("sourceRef", "targetRef"):
                ref = flow.get(end)
                if ref and ref not in ids:
                    self.add(f"has {end} '{ref}', which is no element of the process", self.bpmn, flow)

    def check_topic(self, node: Any) -> None:
        topic = node.get(CAMUNDA + "topic")
        if node.get(CAMUNDA + "type") != "external" or not topic:
            self.add('is not bound to a plugin: set camunda:type="external" and camunda:topic="<plugin-id>"',
                     self.bpmn, node)
            return
        if topic == DISPATCH_TOPIC or self.registry.resolve_topic(topic):
            return
        plugin_id, _, operation = topic.partition(".")
        plugin = self.registry.get(plugin_id)
        if plugin is not None:
            close = difflib.get_close_matches(operation, list(plugin.spec.operations), n=1)
            hint = f" Did you mean '{plugin_id}.{close[0]}'?" if close else \
                f" It has: {', '.join(plugin.spec.operations)}."
            self.add(f"names topic '{topic}': plugin '{plugin_id}' has no operation '{operation}'.{hint}",
                     self.bpmn, node)
            return
        suggestion = self.registry.suggest(plugin_id)
        hint = f" Did you mean '{suggestion}{'.' + operation if operation else ''}'?" if suggestion else \
            f" Installed plugins: {', '.join(self.registry.ids()) or 'none'}."
        self.add(f"names topic '{topic}': no such plugin.{hint}", self.bpmn, node)

    def check_decision_refs(self, processes: list[Any], decisions: dmn.DecisionModel | None) -> None:
        for process in processes:
            for node in process.iter(_q("businessRuleTask")):
                ref = node.get(CAMUNDA + "decisionRef")
                if not ref:
                    self.add("has no camunda:decisionRef: name a decision of decisions.dmn", self.bpmn, node)
                    continue
                if decisions is None or ref in decisions.decisions:
                    continue
                close = difflib.get_close_matches(ref, list(decisions.decisions), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else \
                    f" Decisions in {self.dmn_path.name}: {', '.join(decisions.decisions) or 'none'}."
                self.add(f"names decisionRef '{ref}': no such decision in {self.dmn_path.name}.{hint}",
                         self.bpmn, node)

    def compile_expressions(self, processes: list[Any]) -> dict[str, Compiled]:
        compiled: dict[str, Compiled] = {}
        for process in processes:
            for node in process.iter(_q("conditionExpression"), _q("timeDuration"), _q("timeDate"),
                                     _q("timeCycle")):
                text = (node.text or "").strip()
                if not text:
                    continue
                owner = node.getparent()
                if etree.QName(owner).localname.endswith("EventDefinition"):
                    owner = owner.getparent()
                self._compile(compiled, text, etree.QName(node).localname, owner, node.sourceline)
            for param in process.iter(CAMUNDA + "inputParameter", CAMUNDA + "outputParameter"):
                owner = param.getparent().getparent().getparent()  # inputOutput < extensionElements < element
                kind = f"{etree.QName(param).localname} '{param.get('name')}'"
                self._compile_value(compiled, param, kind, owner)
        return compiled

    def _compile_value(self, compiled: dict[str, Compiled], node: Any, kind: str, owner: Any) -> None:
        """A parameter's text, or every text of its camunda:list / camunda:map, nested; a script is refused."""
        children = [c for c in node if isinstance(c.tag, str)]
        if not children:
            if is_expression(node.text or ""):
                self._compile(compiled, (node.text or "").strip(), kind, owner, node.sourceline)
            return
        inner = children[0]
        local = etree.QName(inner).localname
        if local not in ("list", "map"):
            self.add(f"{kind}: a <{local}> value is not supported: give a string, ${{FEEL}}, a list or a map",
                     self.bpmn, owner, line=node.sourceline)
            return
        for item in inner:
            if isinstance(item.tag, str):
                self._compile_value(compiled, item, kind, owner)

    def _compile(self, compiled: dict[str, Compiled], text: str, kind: str, owner: Any, line: int) -> None:
        if text in compiled:
            return
        try:
            compiled[text] = compile_feel(text)
        except FeelSyntaxError as e:
            self.add(f"{kind} {text!r} is not valid FEEL: {e}", self.bpmn, owner, line=line)

    def end_outcomes(self, processes: list[Any]) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        for process in processes:
            for node in process.iter(_q("endEvent")):
                outcome = "done"
                for prop in node.iter(CAMUNDA + "property"):
                    if prop.get("name") == "outcome":
                        outcome = prop.get("value", "")
                if outcome not in OUTCOMES:
                    self.add(f"has outcome '{outcome}': use one of {', '.join(OUTCOMES)}", self.bpmn, node)
                outcomes[node.get("id")] = outcome
        return outcomes

    def check_dmndi(self, root: Any) -> None:
        """With DMNDI, every decision needs a DMNShape, or Camunda Modeler's DRD leaves it out.

        A file without any DMNDI (older Modeler versions, other tools) still opens: the Modeler lays the
        diagram out itself, so that is not a problem here.
        """
        if not any(isinstance(s.tag, str) and etree.QName(s).localname == "DMNDI" for s in root):
            return
        shapes = {s.get("dmnElementRef") for s in root.iter() if isinstance(s.tag, str)
                  and etree.QName(s).localname == "DMNShape"}
        decisions = [d for d in root if isinstance(d.tag, str) and etree.QName(d).localname == "decision"]
        for decision in decisions:
            if decision.get("id") not in shapes:
                self.add("has no DMNShape (diagram interchange): it is invisible in the decision requirements "
                         "diagram", self.dmn_path, decision)

    def check_dmn(self) -> dmn.DecisionModel | None:
        tree = self.parse_xml(self.dmn_path)
        if tree is None:
            return None
        root = tree.getroot()
        xsd = DMN_SCHEMAS.get(etree.QName(root).namespace or "")
        if xsd is not None:
            self.xsd(tree, xsd, self.dmn_path)
        self.check_dmndi(root)
        try:
            model = dmn.load(self.dmn_path)
            self.warnings.extend(model.load_warnings)
            return model
        except ModelError as e:
            self.problems.extend(e.problems or [Problem(e.message, file=str(self.dmn_path))])
            return None


def error_boundaries(root: Any) -> dict[str, list[tuple[str | None, str | None, str | None]]]:
    """The error boundary events of the file, by the activity they are attached to."""
    codes = {e.get("id"): e.get("errorCode") for e in root.iter(_q("error"))}
    found: dict[str, list[tuple[str | None, str | None, str | None]]] = {}
    for event in root.iter(_q("boundaryEvent")):
        for definition in event.iter(_q("errorEventDefinition")):
            code = codes.get(definition.get("errorRef")) if definition.get("errorRef") else None
            found.setdefault(str(event.get("attachedToRef")), []).append(
                (code or None, definition.get(CAMUNDA + "errorCodeVariable"),
                 definition.get(CAMUNDA + "errorMessageVariable")))
    return found


def _defined(root: Any) -> set[str]:
    return {str(p.get("id")) for p in root.findall(_q("process"))}


def _process_index(bpmn: Path) -> dict[str, Path]:
    """Which other .bpmn file beside ``bpmn`` defines each process id (files that do not parse: none)."""
    index: dict[str, Path] = {}
    for path in sorted(bpmn.parent.glob("*.bpmn")):
        if path.resolve() == bpmn.resolve():
            continue
        try:
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()
        except (OSError, etree.XMLSyntaxError):
            continue
        for process_id in _defined(root):
            index.setdefault(process_id, path)
    return index


def _called(root: Any) -> set[str]:
    return {str(c.get("calledElement")) for c in root.iter(_q("callActivity")) if c.get("calledElement")}


def check_calls(checker: _Checker, files: dict[Path, Any]) -> None:
    """Every call activity names a process that one of the model files defines."""
    defined = {str(p.get("id")) for tree in files.values() for p in tree.getroot().findall(_q("process"))}
    for path, tree in files.items():
        for node in tree.getroot().iter(_q("callActivity")):
            ref = node.get("calledElement")
            if not ref:
                checker.add("has no calledElement: name the id of a process in a .bpmn file of the process "
                            "folder", path, node)
            elif ref not in defined:
                close = difflib.get_close_matches(ref, sorted(defined), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else f" Processes: {', '.join(sorted(defined))}."
                checker.add(f"calls process '{ref}', which no .bpmn file of {path.parent} defines.{hint}", path,
                            node)


def load_models(bpmn: Path, dmn_path: Path, registry: Registry) -> Models:
    """Check and parse both models; ``ModelError`` lists every problem when anything is wrong.

    The other ``.bpmn`` files beside ``bpmn`` (the workspace's ``process/`` folder) whose processes call
    activities reach (transitively) are models too, and are checked the same way; files nothing calls
    are not read as models."""
    checker = _Checker(bpmn, dmn_path, registry)
    tree = checker.parse_xml(bpmn)
    processes = checker.check_bpmn(tree) if tree is not None else []
    decisions = checker.check_dmn()
    checker.check_decision_refs(processes, decisions)
    boundaries = error_boundaries(tree.getroot()) if tree is not None else {}
    expressions = checker.compile_expressions(processes)
    files: dict[Path, Any] = {bpmn: tree} if tree is not None else {}
    # the processes call activities reach, in the other .bpmn files beside this one, transitively; those
    # files are checked like this one (files nothing calls are not models of this workspace's process)
    index = _process_index(bpmn)
    wanted = sorted(_called(tree.getroot()) - _defined(tree.getroot())) if tree is not None else []
    while wanted:
        other = index.get(wanted.pop())
        if other is None or other in files:
            continue
        side = _Checker(other, dmn_path, registry)
        other_tree = side.parse_xml(other)
        if other_tree is not None:
            other_processes = side.check_bpmn(other_tree)
            side.check_decision_refs(other_processes, decisions)
            expressions.update(side.compile_expressions(other_processes))
            for activity, catches in error_boundaries(other_tree.getroot()).items():
                boundaries.setdefault(activity, []).extend(catches)
            files[other] = other_tree
            wanted += sorted(_called(other_tree.getroot()) - set().union(*(_defined(t.getroot())
                                                                           for t in files.values())))
        checker.problems.extend(side.problems)
    check_calls(checker, files)
    called = set().union(*(_called(t.getroot()) for t in files.values())) if files else set()
    # the task's process: the executable one nothing calls (a second, called process may share the file)
    executable = [p for p in processes if p.get("isExecutable") == "true" and p.get("id") not in called]
    outcomes = checker.end_outcomes(executable or processes)
    if tree is not None and len(executable) != 1:
        checker.add(f"must hold exactly one process with isExecutable=\"true\" that no call activity calls; found "
                    f"{len(executable)}", bpmn, line=tree.getroot().sourceline)
    spec = subprocesses = None
    if not checker.problems and tree is not None:
        parser = EngineParser()
        try:
            for path, each in files.items():
                parser.add_bpmn_xml(each.getroot(), filename=str(path))
            for process_parser in parser.process_parsers.values():
                process_parser.process_executable = True  # a called process need not be marked executable
            process_id = executable[0].get("id")
            spec = parser.get_spec(process_id)
            subprocesses = parser.get_subprocess_specs(process_id)
            on_clock([spec, *subprocesses.values()])
        except ValidationException as e:
            node_id = getattr(e, "id", None)
            element = f"{getattr(e, 'tag', '') or 'element'} {node_id}" if node_id else None
            checker.problems.append(Problem(f"SpiffWorkflow: {e}", file=getattr(e, "file_name", None) or str(bpmn),
                                            line=getattr(e, "line_number", None) or None, element=element))
    if checker.problems:
        raise ModelError(f"{len(checker.problems)} problem(s) in the process models", problems=checker.problems)
    assert decisions is not None and spec is not None
    from engine.process.pinned import bpmn_hash

    # the files a call activity may reach are part of the model's identity
    named = [(bpmn.name, bpmn.read_bytes())] + [(p.name, p.read_bytes()) for p in files if p != bpmn]
    return Models(
        bpmn_path=bpmn, dmn_path=dmn_path,
        bpmn_hash=bpmn_hash(named),
        dmn_hash=hashlib.sha256(dmn_path.read_bytes()).hexdigest(),
        process_id=str(executable[0].get("id")), spec=spec, subprocess_specs=subprocesses or {},
        decisions=decisions, end_outcomes=outcomes, expressions=expressions, error_boundaries=boundaries,
        called_files=tuple(p for p in files if p != bpmn),
    )


def check_decisions(dmn_path: Path, warnings: list[Problem] | None = None) -> list[Problem]:
    """The checks of a DMN file on its own: XML, XSD, DMNDI, every cell. The problems are returned; when the
    file loads, what it says that cannot work (FEEL that parses but cannot be evaluated, a decision without
    logic, a Java function: null at evaluation) is added to ``warnings``."""
    checker = _Checker(Path("-"), dmn_path, Registry({}, []))
    checker.check_dmn()
    if warnings is not None:
        warnings.extend(checker.warnings)
    return checker.problems


def check_models(bpmn: Path, dmn_path: Path, registry: Registry) -> list[Problem]:
    try:
        load_models(bpmn, dmn_path, registry)
    except ModelError as e:
        return e.problems
    return []
