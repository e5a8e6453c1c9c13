"""The Mermaid diagram of the state machine: drawn from the ASL, complete, and the same in docs/how-it-decides.md.

The generated Mermaid is parsed back here with this file's own reading of the syntax, and compared with what
the ASL says, computed independently: every state is a node (a Map a subgraph holding its states), every
Next, Choice rule, Default and Catch an edge.
"""

import json
import re
from collections import Counter

import pytest

from emulator import cli, diagram

PAGE = "docs/how-it-decides.md"  # the page that holds the diagram; `make diagram` writes it
FIX = f"run `make diagram` (python -m emulator diagram --write {PAGE}) and commit {PAGE} with the ASL"


def stale_readme_message(readme: str, asl: dict, page=diagram.ROOT / PAGE) -> str | None:
    block = diagram.extract_block(readme)
    if block is None:
        return f"{PAGE} has no {diagram.BEGIN} ... {diagram.END} block: put the two markers back, then {FIX}"
    if block != "\n" + diagram.page_block(asl, page):
        return f"{PAGE}'s state machine diagram differs from statemachine/rotation.asl.json: {FIX}"
    return None


def test_the_page_shows_the_diagram_of_the_current_asl():
    problem = stale_readme_message((diagram.ROOT / PAGE).read_text(), diagram.load())

    assert problem is None, problem


def test_make_diagram_writes_the_page_that_holds_the_diagram():
    makefile = (diagram.ROOT / "Makefile").read_text()

    assert f"python -m emulator diagram --write {PAGE}\n" in makefile
    assert [p.name for p in (diagram.ROOT / "docs").glob("*.md") if diagram.BEGIN in p.read_text()] == [PAGE.split("/")[1]]
    assert diagram.BEGIN not in (diagram.ROOT / "README.md").read_text()


def test_a_changed_asl_makes_the_readme_check_say_how_to_fix_it():
    asl = diagram.load()
    first = next(iter(asl["States"].values()))
    first["Comment"] = "comments are not drawn"
    readme = diagram.replace_block("intro\n" + diagram.BEGIN + "\n" + diagram.END + "\n", diagram.page_block(asl, diagram.ROOT / PAGE))
    assert stale_readme_message(readme, asl) is None

    asl["States"]["A new state"] = {"Type": "Succeed"}

    assert "make diagram" in stale_readme_message(readme, asl)
    assert "make diagram" in stale_readme_message("a README without the markers", asl)


# --- reading the Mermaid back -------------------------------------------------------------------------------

NODE = re.compile(r'^\s*(?P<id>\w+)(?P<shape>\(\[|\[/|\(\(|\[|\{|\()"(?P<label>.*)"(?:\]\)|/\]|\)\)|\]|\}|\))$')
SUBGRAPH = re.compile(r'^\s*subgraph (?P<id>\w+) \["(?P<label>.*)"\]$')
EDGE = re.compile(r'^\s*(?P<source>\w+) (?P<arrow>-->|-\.->)(?:\|"(?P<label>[^"]*)"\|)? (?P<target>\w+)$')
STYLE = re.compile(r"^\s*(classDef \w+ [\w:#,]+|class [\w,]+ \w+)$")


def decode(text: str) -> str:
    """Mermaid's entity codes (#quot;, #35;) back to characters."""
    named = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}
    return re.sub(r"#(\w+);", lambda m: chr(int(m[1])) if m[1].isdigit() else named[m[1]], text)


def parse(mermaid: str) -> dict:
    """Nodes {id: (label, shape, enclosing subgraph ids)}, subgraphs {id: (label, enclosing)}, edges [(from, arrow, label, to)]."""
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart TD"
    nodes, subgraphs, edges, stack = {}, {}, [], []
    for line in lines[1:]:
        if m := SUBGRAPH.match(line):
            subgraphs[m["id"]] = (decode(m["label"]), tuple(stack))
            stack.append(m["id"])
        elif line.strip() == "end":
            stack.pop()
        elif m := EDGE.match(line):
            edges.append((m["source"], m["arrow"], decode(m["label"] or ""), m["target"]))
        elif m := NODE.match(line):
            assert m["id"] not in nodes, f"node {m['id']} declared twice"
            nodes[m["id"]] = (decode(m["label"]), m["shape"], tuple(stack))
        else:
            assert STYLE.match(line), f"not a line this diagram should have: {line!r}"
    assert not stack, "a subgraph is not closed"
    return {"nodes": nodes, "subgraphs": subgraphs, "edges": edges}


def state_name(label: str) -> str:
    return label.split("<br/>")[0]


# --- what the ASL says, independently -----------------------------------------------------------------------


def states_of(machine: dict, container: str | None = None):
    """(name, state, enclosing Map/Parallel name) for every state, nested ones included."""
    for name, state in machine["States"].items():
        yield name, state, container
        inner = state.get("ItemProcessor") or state.get("Iterator")
        for scope in [inner] if inner else state.get("Branches", []):
            yield from states_of(scope, name)


def transitions(machine: dict) -> Counter:
    """(from, to, solid or dashed) for every transition the ASL declares, and the start."""
    found = Counter({("<start>", machine["StartAt"], "-->"): 1})
    for name, state, _ in states_of(machine):
        targets = [state.get("Next"), *(r["Next"] for r in state.get("Choices", [])), state.get("Default")]
        found.update((name, t, "-->") for t in targets if t)
        found.update((name, c["Next"], "-.->") for c in state.get("Catch", []))
    return found


TRICKY = {
    "Comment": "Every kind of state and transition, and names Mermaid would choke on.",
    "StartAt": "Start",
    "States": {
        "Start": {"Type": "Pass", "Next": 'Is it "big" | <small> #1?'},
        'Is it "big" | <small> #1?': {
            "Type": "Choice",
            "Choices": [
                {"And": [{"Variable": "$.size", "NumericGreaterThan": 10},
                         {"Not": {"Variable": "$.tag", "StringEquals": "x#1"}}], "Next": "Each item"},
                {"Variable": "$.size", "IsNumeric": False, "Next": "Fail: bad size"},
                {"Variable": "$.size", "NumericLessThanEqualsPath": "$.limit", "Next": "Fail: bad size"},
            ],
            "Default": "end",
        },
        "end": {"Type": "Succeed"},
        "Fail: bad size": {"Type": "Fail", "Error": "BadSize"},
        "Each item": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "Iterator": {
                "StartAt": "Each part",
                "States": {
                    "Each part": {
                        "Type": "Map",
                        "ItemProcessor": {
                            "ProcessorConfig": {"Mode": "INLINE"},
                            "StartAt": "Call",
                            "States": {
                                "Call": {
                                    "Type": "Task",
                                    "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                                    "Catch": [{"ErrorEquals": ["S3.NoSuchKeyException", "States.Timeout"], "Next": "Missing"}],
                                    "End": True,
                                },
                                "Missing": {"Type": "Pass", "End": True},
                            },
                        },
                        "Next": "Wait a bit",
                    },
                    "Wait a bit": {"Type": "Wait", "Seconds": 5, "End": True},
                },
            },
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fail: bad size"}],
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Arguments": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:left-fn"}, "End": True}}},
                {"StartAt": "Right?", "States": {
                    "Right?": {"Type": "Choice", "QueryLanguage": "JSONata",
                               "Choices": [{"Condition": "{% $states.input.go = true %}", "Next": "Right"}], "Default": "Right"},
                    "Right": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                              "Parameters": {"FunctionName": "${CheckFunctionArn}", "Payload": {"user": "u"}}, "End": True},
                }},
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture(params=["rotation.asl.json", "tricky"])
def asl(request) -> dict:
    return diagram.load() if request.param == "rotation.asl.json" else json.loads(json.dumps(TRICKY))


def test_every_state_is_a_node_inside_its_map(asl):
    drawn = parse(diagram.mermaid(asl))
    by_name = {state_name(label): (node, enclosing) for node, (label, _, enclosing) in drawn["nodes"].items()}
    by_name |= {state_name(label): (sub, enclosing) for sub, (label, enclosing) in drawn["subgraphs"].items()}
    subgraph_names = {sub: state_name(label) for sub, (label, _) in drawn["subgraphs"].items()}

    states = list(states_of(asl))
    for name, state, container in states:
        assert name in by_name, f"state {name!r} is not drawn"
        node, enclosing = by_name[name]
        assert (node in drawn["subgraphs"]) == (state["Type"] in ("Map", "Parallel")), name
        named_enclosing = [subgraph_names[s] for s in enclosing if subgraph_names[s] in {n for n, _, _ in states}]
        assert (named_enclosing or [None])[-1] == container, f"{name!r} is drawn in {named_enclosing}, not in {container!r}"
    helpers = [label for label, shape, _ in drawn["nodes"].values() if shape == "(("]
    assert helpers == ["start"] and len(drawn["nodes"]) == 1 + sum(s["Type"] not in ("Map", "Parallel") for _, s, _ in states)


def test_every_transition_is_an_edge(asl):
    drawn = parse(diagram.mermaid(asl))
    names = {node: state_name(label) for node, (label, _, _) in drawn["nodes"].items()}
    names |= {sub: state_name(label) for sub, (label, _) in drawn["subgraphs"].items()}
    (start,) = [node for node, (_, shape, _) in drawn["nodes"].items() if shape == "(("]
    names[start] = "<start>"

    edges = Counter((names[source], names[target], arrow) for source, arrow, _, target in drawn["edges"])

    assert edges == transitions(asl)


def test_node_ids_are_safe_in_mermaid_and_unique(asl):
    drawn = parse(diagram.mermaid(asl))
    ids = list(drawn["nodes"]) + list(drawn["subgraphs"])

    assert len(ids) == len(set(ids))
    for node in ids:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", node) and node.lower() not in ("end", "subgraph", "graph", "class"), node


def test_each_state_shows_what_it_does_and_ends_are_rounded(asl):
    drawn = parse(diagram.mermaid(asl))
    by_name = {state_name(label): (label, shape) for label, shape, _ in drawn["nodes"].values()}
    for name, state, _ in states_of(asl):
        if state["Type"] in ("Map", "Parallel"):
            continue
        label, shape = by_name[name]
        expected_shape = {"Choice": "{", "Wait": "[/"}.get(state["Type"])
        if expected_shape is None:
            ends = state.get("End") or state["Type"] in ("Fail", "Succeed")
            expected_shape = "([" if ends else "(" if state["Type"] == "Pass" else "["
        assert shape == expected_shape, name
        if state["Type"] == "Task":  # the call: service:action, or the Lambda and its phase
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+|lambda: [\w-]+", label.split("<br/>")[1]), label


def test_labels_are_short_and_say_the_condition_the_errors_and_the_call():
    drawn = parse(diagram.mermaid(TRICKY))
    labels = {label for _, _, label, _ in drawn["edges"]}
    nodes = {label for label, _, _ in drawn["nodes"].values()} | {label for label, _ in drawn["subgraphs"].values()}

    assert labels == {
        "",
        'size > 10 and not (tag = "x#1")',
        "size is not numeric",
        "size <= limit",
        "otherwise",
        "go = true",
        "NoSuchKey, Timeout",
        "any error",
    }
    assert {"Call<br/>s3:getObject", "Left<br/>lambda: left-fn", "Right<br/>lambda: Check", "Wait a bit<br/>wait 5s"} <= nodes
    assert "Each item<br/>Map: once per item of items" in nodes
    assert 'Is it "big" | <small> #1?' in nodes


def test_the_real_diagram_names_the_calls():
    mermaid = diagram.mermaid(diagram.load())

    for call in ("iam:createAccessKey", "secretsmanager:putSecretValue", "ses:sendEmail", "lambda: PlanRun", "sfn:describeMapRun"):
        assert f"<br/>{call}" in mermaid
    assert '-.->|"NoSuchEntity"|' in mermaid and '-.->|"any error"|' in mermaid


# --- the command --------------------------------------------------------------------------------------------


def test_the_diagram_command_prints_the_mermaid(capsys):
    assert cli.main(["diagram"]) == 0

    assert capsys.readouterr().out == diagram.mermaid(diagram.load())


def test_write_replaces_only_the_block_between_the_markers(tmp_path, capsys):
    page = tmp_path / "README.md"
    page.write_text(f"# Title\n\nText.\n\n## The state machine\n\n{diagram.BEGIN}\nold\n{diagram.END}\n\n## After\n")

    assert cli.main(["diagram", "--write", str(page)]) == 0
    written = page.read_text()
    assert cli.main(["diagram", "--write", str(page)]) == 0

    assert page.read_text() == written
    assert written.startswith("# Title\n\nText.\n\n## The state machine\n\n" + diagram.BEGIN + "\n")
    assert written.endswith(diagram.END + "\n\n## After\n") and "\nold\n" not in written
    assert stale_readme_message(written, diagram.load(), page) is None
    assert "is redrawn" in capsys.readouterr().out


def test_write_refuses_a_file_without_the_markers(tmp_path, capsys):
    page = tmp_path / "README.md"
    page.write_text("# Title\n")

    assert cli.main(["diagram", "--write", str(page)]) == 2
    assert page.read_text() == "# Title\n"
    assert diagram.BEGIN in capsys.readouterr().err
