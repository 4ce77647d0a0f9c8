"""docs/bpmn-support.md is true: every row of its table is tried here.

For each BPMN element or Camunda attribute the table lists, a small model is made around it (a start
event, the element, an end event; diagram interchange for every shape and flow, so the project's own
Modeler checks pass) and given to the real model checks and the real kernel: a row marked **runs** must
validate and carry a task to its done end; a row marked **refused** must be refused by validate with the
reason the table quotes. A row without a model here, or a model without a row, fails the test.
"""

import re
import shutil
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.kernel import load_registry
from engine.process import load_models
from engine.testing import KernelHarness
from engine.workspace import Workspace
from tests.conftest import replays

pytestmark = pytest.mark.usefixtures("check_state")  # every durable point must restore exactly

DOC = Path(__file__).resolve().parents[2] / "docs" / "bpmn-support.md"
DATA = Path(__file__).resolve().parents[1] / "data"

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="bpmn:tFormalExpression"'
ECHO = 'camunda:type="external" camunda:topic="echo.echo"'


def _timer(kind, text):
    return f'<bpmn:timerEventDefinition><bpmn:{kind} {XSI}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>'


def _io(*params):
    return ("<bpmn:extensionElements><camunda:inputOutput>" + "".join(params)
            + "</camunda:inputOutput></bpmn:extensionElements>")


def _flow(fid, source, target, condition=None):
    body = f"<bpmn:conditionExpression {XSI}>{condition}</bpmn:conditionExpression>" if condition else ""
    return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">{body}</bpmn:sequenceFlow>'


def between(element, *extra):
    """The element X between the start and the end (flows Flow_in and Flow_out), plus ``extra`` XML; its
    incoming and outgoing go where the XSD wants them: after its extensionElements, before the rest."""
    io = "<bpmn:incoming>Flow_in</bpmn:incoming><bpmn:outgoing>Flow_out</bpmn:outgoing>"
    if "</bpmn:extensionElements>" in element:
        at = element.index("</bpmn:extensionElements>") + len("</bpmn:extensionElements>")
    else:
        at = element.index(">") + 1
    element = element[:at] + io + element[at:]
    return element + "".join(extra) + _flow("Flow_in", "Start_1", "X") + _flow("Flow_out", "X", "End_1")


# the path of a boundary event B: to an end event of its own
END_B = ('<bpmn:endEvent id="End_b"><bpmn:incoming>Flow_b</bpmn:incoming></bpmn:endEvent>'
         + _flow("Flow_b", "B", "End_b"))


def flows(*triples):
    return "".join(_flow(*t) for t in triples)


# Each row of the table (its first cell, without backticks) -> the process body that exercises it. The
# start event Start_1 and end event End_1 are added unless the body has its own.
MODELS = {
    # events
    "startEvent (none)": between('<bpmn:task id="X"></bpmn:task>'),
    "startEvent with timerEventDefinition": (
        f'<bpmn:startEvent id="Start_1"><bpmn:outgoing>Flow_in</bpmn:outgoing>{_timer("timeDuration", "PT0.1S")}'
        '</bpmn:startEvent>' + between('<bpmn:task id="X"></bpmn:task>')),
    "startEvent with messageEventDefinition": (
        '<bpmn:startEvent id="Start_1"><bpmn:outgoing>Flow_in</bpmn:outgoing><bpmn:messageEventDefinition />'
        '</bpmn:startEvent>' + between('<bpmn:task id="X"></bpmn:task>')),
    "startEvent with signalEventDefinition": (
        '<bpmn:startEvent id="Start_1"><bpmn:outgoing>Flow_in</bpmn:outgoing><bpmn:signalEventDefinition />'
        '</bpmn:startEvent>' + between('<bpmn:task id="X"></bpmn:task>')),
    "endEvent (none)": between('<bpmn:task id="X"></bpmn:task>'),
    "endEvent camunda:property outcome": (
        between('<bpmn:task id="X"></bpmn:task>').replace("End_1", "End_1")),  # End_1 carries outcome=done
    "endEvent with terminateEventDefinition": (
        '<bpmn:endEvent id="End_1"><bpmn:incoming>Flow_out</bpmn:incoming><bpmn:terminateEventDefinition />'
        '</bpmn:endEvent>' + between('<bpmn:task id="X"></bpmn:task>')),
    "intermediateCatchEvent with timeDuration": between(
        f'<bpmn:intermediateCatchEvent id="X">{_timer("timeDuration", "PT0.1S")}</bpmn:intermediateCatchEvent>'),
    "intermediateCatchEvent with timeDate": between(
        f'<bpmn:intermediateCatchEvent id="X">{_timer("timeDate", "2020-01-01T00:00:00Z")}'
        '</bpmn:intermediateCatchEvent>'),
    "intermediateCatchEvent with timeCycle": between(
        f'<bpmn:intermediateCatchEvent id="X">{_timer("timeCycle", "R1/PT0.1S")}</bpmn:intermediateCatchEvent>'),
    "timer expression (FEEL or ${...})": between(
        f'<bpmn:intermediateCatchEvent id="X">{_timer("timeDuration", "${duration(&#34;PT0.1S&#34;)}")}'
        '</bpmn:intermediateCatchEvent>'),
    "intermediateCatchEvent with messageEventDefinition": between(
        '<bpmn:intermediateCatchEvent id="X"><bpmn:messageEventDefinition /></bpmn:intermediateCatchEvent>'),
    "intermediateCatchEvent with signalEventDefinition": between(
        '<bpmn:intermediateCatchEvent id="X"><bpmn:signalEventDefinition /></bpmn:intermediateCatchEvent>'),
    "intermediateThrowEvent (none)": between('<bpmn:intermediateThrowEvent id="X"></bpmn:intermediateThrowEvent>'),
    "boundaryEvent with errorEventDefinition": between(
        f'<bpmn:serviceTask id="X" {ECHO}></bpmn:serviceTask>',
        '<bpmn:boundaryEvent id="B" attachedToRef="X"><bpmn:outgoing>Flow_b</bpmn:outgoing>'
        '<bpmn:errorEventDefinition camunda:errorCodeVariable="code" camunda:errorMessageVariable="message" />'
        '</bpmn:boundaryEvent><bpmn:endEvent id="End_b"><bpmn:incoming>Flow_b</bpmn:incoming></bpmn:endEvent>',
        _flow("Flow_b", "B", "End_b")),
    # boundary timers far beyond the harness's FixedClock (a second per reading, read many times a second
    # while the call runs): at PT1H, a call slowed by a loaded machine saw the timer fire
    "boundaryEvent with timerEventDefinition (interrupting)": between(
        f'<bpmn:serviceTask id="X" {ECHO}></bpmn:serviceTask>',
        f'<bpmn:boundaryEvent id="B" attachedToRef="X"><bpmn:outgoing>Flow_b</bpmn:outgoing>'
        f'{_timer("timeDuration", "P100D")}</bpmn:boundaryEvent>', END_B),
    "boundaryEvent with timerEventDefinition (non-interrupting)": between(
        f'<bpmn:serviceTask id="X" {ECHO}></bpmn:serviceTask>',
        f'<bpmn:boundaryEvent id="B" cancelActivity="false" attachedToRef="X"><bpmn:outgoing>Flow_b</bpmn:outgoing>'
        f'{_timer("timeCycle", "R2/P100D")}</bpmn:boundaryEvent>', END_B),
    "boundaryEvent with messageEventDefinition": between(
        f'<bpmn:serviceTask id="X" {ECHO}></bpmn:serviceTask>',
        '<bpmn:boundaryEvent id="B" attachedToRef="X"><bpmn:outgoing>Flow_b</bpmn:outgoing>'
        '<bpmn:messageEventDefinition /></bpmn:boundaryEvent>', END_B),
    # activities
    "task": between('<bpmn:task id="X"></bpmn:task>'),
    "serviceTask camunda:type=\"external\" camunda:topic": between(
        f'<bpmn:serviceTask id="X" {ECHO}></bpmn:serviceTask>'),
    "serviceTask camunda:class / expression / delegateExpression / connector": between(
        '<bpmn:serviceTask id="X" camunda:class="org.example.Delegate"></bpmn:serviceTask>'),
    "businessRuleTask camunda:decisionRef": between(
        '<bpmn:businessRuleTask id="X" camunda:decisionRef="retry_policy" camunda:resultVariable="retry">'
        '</bpmn:businessRuleTask>'),
    "scriptTask scriptFormat=\"python\"": between(
        '<bpmn:scriptTask id="X" scriptFormat="python"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'),
    "scriptTask in another language": between(
        '<bpmn:scriptTask id="X" scriptFormat="javascript"><bpmn:script>var x = 1</bpmn:script></bpmn:scriptTask>'),
    "userTask": between('<bpmn:userTask id="X"></bpmn:userTask>'),
    "manualTask": between('<bpmn:manualTask id="X"></bpmn:manualTask>'),
    "receiveTask": between('<bpmn:receiveTask id="X"></bpmn:receiveTask>'),
    "subProcess (embedded)": between(
        '<bpmn:subProcess id="X"><bpmn:startEvent id="S_in"><bpmn:outgoing>F_in</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:task id="T_in"><bpmn:incoming>F_in</bpmn:incoming><bpmn:outgoing>F_out</bpmn:outgoing></bpmn:task>'
        '<bpmn:endEvent id="E_in"><bpmn:incoming>F_out</bpmn:incoming></bpmn:endEvent>'
        + _flow("F_in", "S_in", "T_in") + _flow("F_out", "T_in", "E_in") + "</bpmn:subProcess>"),
    "callActivity calledElement": between('<bpmn:callActivity id="X" calledElement="called"></bpmn:callActivity>'),
    "callActivity camunda:in / camunda:out": between(
        '<bpmn:callActivity id="X" calledElement="called"><bpmn:extensionElements>'
        '<camunda:in source="task" target="task" /><camunda:in sourceExpression="${1 + 1}" target="two" />'
        '<camunda:out source="two" target="back" /></bpmn:extensionElements></bpmn:callActivity>'),
    "callActivity to a missing process": between(
        '<bpmn:callActivity id="X" calledElement="nowhere"></bpmn:callActivity>'),
    # gateways
    "exclusiveGateway (with default flow)": (
        '<bpmn:exclusiveGateway id="X" default="Flow_out"><bpmn:incoming>Flow_in</bpmn:incoming>'
        '<bpmn:outgoing>Flow_out</bpmn:outgoing><bpmn:outgoing>Flow_no</bpmn:outgoing></bpmn:exclusiveGateway>'
        '<bpmn:endEvent id="End_no"><bpmn:incoming>Flow_no</bpmn:incoming></bpmn:endEvent>'
        + flows(("Flow_in", "Start_1", "X"), ("Flow_out", "X", "End_1"), ("Flow_no", "X", "End_no", "failures > 5"))),
    "parallelGateway": (
        '<bpmn:parallelGateway id="X"><bpmn:incoming>Flow_in</bpmn:incoming><bpmn:outgoing>Flow_a</bpmn:outgoing>'
        '<bpmn:outgoing>Flow_b</bpmn:outgoing></bpmn:parallelGateway>'
        '<bpmn:parallelGateway id="J"><bpmn:incoming>Flow_a</bpmn:incoming><bpmn:incoming>Flow_b</bpmn:incoming>'
        '<bpmn:outgoing>Flow_out</bpmn:outgoing></bpmn:parallelGateway>'
        + flows(("Flow_in", "Start_1", "X"), ("Flow_a", "X", "J"), ("Flow_b", "X", "J"), ("Flow_out", "J", "End_1"))),
    "inclusiveGateway": (
        '<bpmn:inclusiveGateway id="X" default="Flow_b"><bpmn:incoming>Flow_in</bpmn:incoming>'
        '<bpmn:outgoing>Flow_a</bpmn:outgoing>'
        '<bpmn:outgoing>Flow_b</bpmn:outgoing></bpmn:inclusiveGateway>'
        '<bpmn:inclusiveGateway id="J"><bpmn:incoming>Flow_a</bpmn:incoming><bpmn:incoming>Flow_b</bpmn:incoming>'
        '<bpmn:outgoing>Flow_out</bpmn:outgoing></bpmn:inclusiveGateway>'
        + _flow("Flow_in", "Start_1", "X") + _flow("Flow_a", "X", "J", "task.id != null") + _flow("Flow_b", "X", "J")
        + _flow("Flow_out", "J", "End_1")),
    "eventBasedGateway": (
        '<bpmn:eventBasedGateway id="X"><bpmn:incoming>Flow_in</bpmn:incoming><bpmn:outgoing>Flow_a</bpmn:outgoing>'
        '<bpmn:outgoing>Flow_b</bpmn:outgoing></bpmn:eventBasedGateway>'
        '<bpmn:intermediateCatchEvent id="Ta"><bpmn:incoming>Flow_a</bpmn:incoming><bpmn:outgoing>Flow_out'
        f'</bpmn:outgoing>{_timer("timeDuration", "PT0.1S")}</bpmn:intermediateCatchEvent>'
        '<bpmn:intermediateCatchEvent id="Tb"><bpmn:incoming>Flow_b</bpmn:incoming><bpmn:outgoing>Flow_late'
        f'</bpmn:outgoing>{_timer("timeDuration", "PT1H")}</bpmn:intermediateCatchEvent>'
        '<bpmn:endEvent id="End_late"><bpmn:incoming>Flow_late</bpmn:incoming></bpmn:endEvent>'
        + _flow("Flow_in", "Start_1", "X") + _flow("Flow_a", "X", "Ta") + _flow("Flow_b", "X", "Tb")
        + _flow("Flow_out", "Ta", "End_1") + _flow("Flow_late", "Tb", "End_late")),
    "complexGateway": (
        '<bpmn:complexGateway id="X"><bpmn:incoming>Flow_in</bpmn:incoming><bpmn:outgoing>Flow_out</bpmn:outgoing>'
        '</bpmn:complexGateway>' + _flow("Flow_in", "Start_1", "X") + _flow("Flow_out", "X", "End_1")),
    "conditionExpression (FEEL, ${...} or JUEL)": (
        '<bpmn:exclusiveGateway id="X" default="Flow_no"><bpmn:incoming>Flow_in</bpmn:incoming>'
        '<bpmn:outgoing>Flow_out</bpmn:outgoing><bpmn:outgoing>Flow_no</bpmn:outgoing></bpmn:exclusiveGateway>'
        '<bpmn:endEvent id="End_no"><bpmn:incoming>Flow_no</bpmn:incoming></bpmn:endEvent>'
        + _flow("Flow_in", "Start_1", "X")
        + _flow("Flow_out", "X", "End_1", "${error == null &amp;&amp; failures &lt; 1}")
        + _flow("Flow_no", "X", "End_no")),
    # loops
    "multiInstanceLoopCharacteristics camunda:collection / camunda:elementVariable": between(
        f'<bpmn:serviceTask id="X" {ECHO}>' + _io('<camunda:inputParameter name="f">${file}</camunda:inputParameter>')
        + '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${[&#34;a&#34;, &#34;b&#34;]}" '
          'camunda:elementVariable="file" /></bpmn:serviceTask>'),
    "multiInstanceLoopCharacteristics loopCardinality / completionCondition / isSequential": between(
        f'<bpmn:serviceTask id="X" {ECHO}><bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        f'<bpmn:loopCardinality {XSI}>3</bpmn:loopCardinality>'
        f'<bpmn:completionCondition {XSI}>${{nrOfCompletedInstances = 2}}</bpmn:completionCondition>'
        '</bpmn:multiInstanceLoopCharacteristics></bpmn:serviceTask>'),
    "standardLoopCharacteristics": between(
        f'<bpmn:scriptTask id="X" scriptFormat="python"><bpmn:standardLoopCharacteristics>'
        f'<bpmn:loopCondition {XSI}>n &lt; 3</bpmn:loopCondition></bpmn:standardLoopCharacteristics>'
        '<bpmn:script>n = (n if "n" in dir() else 0) + 1</bpmn:script></bpmn:scriptTask>'),
    # Camunda extensions
    "camunda:inputParameter / outputParameter (text, ${...}, list, map)": between(
        f'<bpmn:serviceTask id="X" {ECHO}>' + _io(
            '<camunda:inputParameter name="a">text</camunda:inputParameter>',
            '<camunda:inputParameter name="b">${task.id}</camunda:inputParameter>',
            '<camunda:inputParameter name="c"><camunda:list><camunda:value>x</camunda:value></camunda:list>'
            '</camunda:inputParameter>',
            '<camunda:inputParameter name="d"><camunda:map><camunda:entry key="k">v</camunda:entry></camunda:map>'
            '</camunda:inputParameter>',
            '<camunda:outputParameter name="e">${echoed.a}</camunda:outputParameter>') + "</bpmn:serviceTask>"),
    "camunda:inputParameter with a camunda:script": between(
        f'<bpmn:serviceTask id="X" {ECHO}>' + _io(
            '<camunda:inputParameter name="a"><camunda:script scriptFormat="groovy">1</camunda:script>'
            '</camunda:inputParameter>') + "</bpmn:serviceTask>"),
    "camunda:executionListener / camunda:taskListener": between(
        '<bpmn:task id="X"><bpmn:extensionElements><camunda:executionListener class="org.example.L" event="start" />'
        '</bpmn:extensionElements></bpmn:task>'),
    "camunda:failedJobRetryTimeCycle": between(
        '<bpmn:task id="X"><bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R3/PT1M'
        '</camunda:failedJobRetryTimeCycle></bpmn:extensionElements></bpmn:task>'),
    # structure
    "collaboration, participant (pool), laneSet / lane": "POOL",
    "textAnnotation, association, group": between('<bpmn:task id="X"></bpmn:task>') + (
        '<bpmn:textAnnotation id="Note"><bpmn:text>a note</bpmn:text></bpmn:textAnnotation>'
        '<bpmn:association id="Assoc" sourceRef="X" targetRef="Note" />'),
}

CALLED = """<bpmn:process id="called" isExecutable="true">
<bpmn:startEvent id="C_start"><bpmn:outgoing>C_f1</bpmn:outgoing></bpmn:startEvent>
<bpmn:endEvent id="C_end"><bpmn:incoming>C_f1</bpmn:incoming></bpmn:endEvent>
<bpmn:sequenceFlow id="C_f1" sourceRef="C_start" targetRef="C_end" /></bpmn:process>"""


def definitions(body, process_id="support"):
    from lxml import etree

    if "Start_1" not in body.split("Flow_in")[0] or 'id="Start_1"' not in body:
        body = '<bpmn:startEvent id="Start_1"><bpmn:outgoing>Flow_in</bpmn:outgoing></bpmn:startEvent>' + body
    if 'id="End_1"' not in body:
        body = ('<bpmn:endEvent id="End_1"><bpmn:extensionElements><camunda:properties><camunda:property '
                 'name="outcome" value="done" /></camunda:properties></bpmn:extensionElements>'
                 '<bpmn:incoming>Flow_out</bpmn:incoming></bpmn:endEvent>') + body
    called = CALLED if 'calledElement="called"' in body else ""
    xml = ('<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
           'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
           'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
           'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
           'id="Definitions_support" targetNamespace="http://engine.dev/test">'
           f'<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>{called}</bpmn:definitions>')
    root = etree.fromstring(xml.encode())
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    bpmndi = "{http://www.omg.org/spec/BPMN/20100524/DI}"
    dc = "{http://www.omg.org/spec/DD/20100524/DC}"
    di_ns = "{http://www.omg.org/spec/DD/20100524/DI}"
    for process in root.findall("bpmn:process", ns):
        diagram = etree.SubElement(root, bpmndi + "BPMNDiagram", id=f"Diagram_{process.get('id')}")
        plane = etree.SubElement(diagram, bpmndi + "BPMNPlane", id=f"Plane_{process.get('id')}",
                                 bpmnElement=process.get("id"))
        for i, node in enumerate(n for n in process.iter() if isinstance(n.tag, str) and n.get("id")
                                 and etree.QName(n).localname not in ("sequenceFlow", "association", "laneSet")
                                 and not etree.QName(n).localname.endswith("Definition")):
            shape = etree.SubElement(plane, bpmndi + "BPMNShape", id=f"{node.get('id')}_di", bpmnElement=node.get("id"))
            etree.SubElement(shape, dc + "Bounds", x=str(150 + 120 * (i % 8)), y=str(80 + 120 * (i // 8)),
                             width="100", height="80")
        for flow in process.iter("{*}sequenceFlow", "{*}association"):
            edge = etree.SubElement(plane, bpmndi + "BPMNEdge", id=f"{flow.get('id')}_di", bpmnElement=flow.get("id"))
            etree.SubElement(edge, di_ns + "waypoint", x="0", y="0")
            etree.SubElement(edge, di_ns + "waypoint", x="10", y="10")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def pool_model():
    body = between('<bpmn:task id="X"></bpmn:task>')
    xml = definitions('<bpmn:laneSet id="Lanes"><bpmn:lane id="Lane_1"><bpmn:flowNodeRef>Start_1</bpmn:flowNodeRef>'
                      '<bpmn:flowNodeRef>X</bpmn:flowNodeRef><bpmn:flowNodeRef>End_1</bpmn:flowNodeRef></bpmn:lane>'
                      '</bpmn:laneSet>' + body)
    xml = xml.replace('<bpmn:process id="support"', '<bpmn:collaboration id="Collab"><bpmn:participant id="Pool" '
                      'processRef="support" /></bpmn:collaboration><bpmn:process id="support"')
    return xml.replace('<bpmndi:BPMNPlane id="Plane_support" bpmnElement="support">',
                       '<bpmndi:BPMNPlane id="Plane_support" bpmnElement="Collab"><bpmndi:BPMNShape id="Pool_di" '
                       'bpmnElement="Pool" isHorizontal="true"><dc:Bounds x="100" y="40" width="1000" height="400" />'
                       '</bpmndi:BPMNShape>')


def table():
    """(first cell, status, notes) of every row of the support table."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 3 and cells[1] in ("runs", "refused"):
            rows.append((cells[0].replace("`", ""), cells[1], cells[2]))
    return rows


def test_every_row_has_a_model_and_every_model_a_row():
    assert sorted(r[0] for r in table()) == sorted(MODELS)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = KernelHarness(tmp_path_factory.mktemp("support") / "ws")
    shutil.copytree(DATA / "plugins" / "echo", h.root / "plugins" / "echo")
    return h


@pytest.mark.parametrize("row", table(), ids=lambda r: r[0])
def test_the_table_is_true(row, harness, tmp_path):
    name, status, notes = row
    ws = harness.ws
    body = MODELS[name]
    (ws.root / "process" / "orchestration.bpmn").write_text(pool_model() if body == "POOL" else definitions(body))
    registry = load_registry(Workspace(ws.root))
    try:
        load_models(ws.bpmn, ws.dmn, registry)
        problems = []
    except ModelError as e:
        problems = [str(p) for p in e.problems]
    if status == "refused":
        reason = re.search(r'"([^"]+)"', notes)
        assert reason, f"row {name!r}: a refused row quotes the reason validate gives"
        assert problems and any(reason.group(1) in p for p in problems), problems
        return
    assert problems == []
    for folder in ("inbox", "done", "failed", "quarantine"):
        for path in (ws.tasks / folder).glob("*"):
            path.unlink()
    harness.put("t.jsonl", {"id": "s1", "tool": "echo", "repo": "example-repo"})
    harness.run()
    assert harness.files("done") == ["t.jsonl"], harness.report("failed", "t.jsonl") if harness.files("failed") \
        else harness.files("quarantine")
    replays(ws.root, last_only=True)  # and the run replays to the same records


@pytest.mark.parametrize(("name", "element", "message"), [
    ("camunda:executionListener / camunda:taskListener", "task X 'Notify owner'",
     "has a camunda:executionListener: engine run runs no listeners (Java classes, expressions or scripts): make "
     "it a step of its own (a service or script task)"),
    ("camunda:failedJobRetryTimeCycle", "task X 'Notify owner'",
     "has camunda:failedJobRetryTimeCycle: engine run retries a failed plugin call as the retry_policy decision "
     "says, not by job retries: remove it"),
    ("complexGateway", "complexGateway X 'Notify owner'",
     "is a complex gateway, which engine run cannot run: use an inclusive gateway with a condition on each "
     "outgoing flow"),
    ("boundaryEvent with messageEventDefinition", "boundaryEvent B 'Notify owner'",
     "waits for a person, a message or a signal, which engine run never delivers: model it as a service task or "
     "a timer"),
])
def test_the_refusals_are_one_line_naming_file_line_element_and_name(name, element, message, harness):
    """The exact line `engine validate` prints: file:line, element type, id, name (its line break a space)."""
    body = MODELS[name]
    target = 'id="B"' if element.startswith("boundaryEvent") else 'id="X"'
    xml = definitions(body.replace(target, target + ' name="Notify&#10;owner"', 1))
    xml = xml.replace("><", ">\n<")  # one element per line, so the line number means something
    path = harness.root / "process" / "orchestration.bpmn"
    path.write_text(xml)
    ident = element.split()[1]
    line = next(i for i, text in enumerate(xml.splitlines(), 1) if f'id="{ident}"' in text)
    if "Listener" in message or "RetryTimeCycle" in message:
        line = next(i for i, text in enumerate(xml.splitlines(), 1) if "camunda:executionListener" in text
                    or "camunda:failedJobRetryTimeCycle>" in text)
    with pytest.raises(ModelError) as caught:
        load_models(harness.ws.bpmn, harness.ws.dmn, load_registry(Workspace(harness.root)))
    assert f"{path}:{line} {element}: {message}" in [str(p) for p in caught.value.problems]
