"""Draw the state machine: statemachine/rotation.asl.json as a Mermaid flowchart.

    python -m emulator diagram                    # print the Mermaid text
    python -m emulator diagram --write docs/how-it-decides.md  # replace the block between the markers (make diagram)

The drawing follows the ASL, so it never needs editing by hand:

- a Task is a box that names its call: ``iam:createAccessKey``, or ``lambda: PlanRun`` for the function it
  invokes; a Choice is a rhombus; a Pass is a rounded box; Fail and Succeed are coloured;
- a state that ends its run or its Map iteration (``End``, Fail, Succeed) has round ends;
- a Map (or Parallel) is a subgraph holding its ItemProcessor's (or Iterator's, or branches') states, nested
  Maps included; edges to and from the Map start and end at the subgraph;
- solid edges are ``Next``, ``Default`` ("otherwise") and each Choice rule (labelled with its condition);
  dashed edges are ``Catch``, labelled with the errors caught, shortened (``NoSuchEntity``, ``any error``).

Node ids are the state names in CamelCase (``Dry run?`` is ``DryRunQ``), made unique, so they are safe in
Mermaid whatever the names hold.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASL = ROOT / "statemachine" / "rotation.asl.json"
BEGIN = "<!-- state-machine-diagram:begin -->"
END = "<!-- state-machine-diagram:end -->"
LABEL_LIMIT = 44  # characters of an edge label before it is cut with an ellipsis

_CONTAINERS = ("Map", "Parallel")
_RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "class", "classdef", "click", "linkstyle", "direction", "default"}
_STYLES = (
    "classDef choice fill:#fff6d5,stroke:#b08800,color:#000",
    "classDef fail fill:#fde2e1,stroke:#c62828,color:#000",
    "classDef succeed fill:#e3f4e1,stroke:#2e7d32,color:#000",
    "classDef terminal fill:#fff,stroke:#888,color:#000",
)


def load(path: Path = ASL) -> dict:
    """The ASL as JSON; it must parse as it is (DefinitionSubstitutions stay ${Name} placeholders)."""
    return json.loads(Path(path).read_text())


def mermaid(asl: dict) -> str:
    """The state machine as a Mermaid ``flowchart TD``."""
    ids = _Ids()
    for name, _state in _walk(asl):
        ids.state(name)
    start = ids.helper("Start")
    lines = ["flowchart TD", f'    {start}(("start"))']
    classes: dict[str, list[str]] = {}
    _declare(asl["States"], ids, lines, classes, depth=1)
    lines.append(f"    {start} --> {ids.of[asl['StartAt']]}")
    for name, state in _walk(asl):
        lines += [f"    {edge}" for edge in _edges(name, state, ids)]
    lines += [f"    {style}" for style in _STYLES]
    lines += [f"    class {','.join(members)} {kind}" for kind, members in classes.items()]
    return "\n".join(lines) + "\n"


def page_block(asl: dict, page: Path) -> str:
    """What goes between the markers of ``page``: a line on how to read it (its link to the ASL relative to the
    page), and the fenced diagram."""
    link = Path(os.path.relpath(ASL, Path(page).resolve().parent)).as_posix()
    return (
        f"Generated from [`statemachine/rotation.asl.json`]({link}) by `make diagram`: edit the\n"
        "ASL, not this block. Solid arrows are `Next`, `Default` (\"otherwise\") and Choice rules; dashed arrows are\n"
        "`Catch`, labelled with the errors caught. Each Task names its call. A Map's steps are drawn inside its box\n"
        "and run once per item. Rounded ends end the run, or the Map's item.\n"
        "\n"
        "```mermaid\n" + mermaid(asl) + "```\n"
    )


def extract_block(text: str) -> str | None:
    """The text between the markers, or None when the markers are missing or out of order."""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return None
    return text[begin + len(BEGIN) : end]


def replace_block(text: str, block: str) -> str:
    if extract_block(text) is None:
        raise ValueError(f"no {BEGIN} ... {END} markers (in this order) to put the diagram between")
    begin, end = text.find(BEGIN) + len(BEGIN), text.find(END)
    return text[:begin] + "\n" + block + text[end:]


def write(path: Path, asl_path: Path = ASL) -> bool:
    """Replace the block between the markers in ``path`` with the diagram of ``asl_path``; True if it changed."""
    text = Path(path).read_text()
    updated = replace_block(text, page_block(load(asl_path), path))
    if updated == text:
        return False
    Path(path).write_text(updated)
    return True


# --- states and scopes ------------------------------------------------------------------------------------


def _scopes(state: dict) -> list[dict]:
    """The nested state machines of a Map (ItemProcessor, or the older Iterator) or a Parallel (Branches)."""
    inner = state.get("ItemProcessor") or state.get("Iterator")
    return [inner] if inner else list(state.get("Branches", []))


def _walk(machine: dict):
    """Every (name, state) of a state machine, nested ones included, in the order the ASL lists them."""
    for name, state in machine["States"].items():
        yield name, state
        for scope in _scopes(state):
            yield from _walk(scope)


class _Ids:
    """Mermaid-safe, unique node ids: the words of the name in CamelCase, ``Q`` for a trailing '?'."""

    def __init__(self):
        self.of: dict[str, str] = {}
        self._used: set[str] = set()

    def state(self, name: str) -> str:
        base = "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", name)) or "State"
        if name.rstrip().endswith("?"):
            base += "Q"
        self.of[name] = self._unique(base)
        return self.of[name]

    def helper(self, base: str) -> str:
        return self._unique(base)

    def _unique(self, base: str) -> str:
        if not base[0].isalpha():
            base = "S" + base
        candidate, n = base, 2
        while candidate in self._used or candidate.lower() in _RESERVED:
            candidate, n = f"{base}{n}", n + 1
        self._used.add(candidate)
        return candidate


def _declare(states: dict, ids: _Ids, lines: list[str], classes: dict, depth: int) -> None:
    pad = "    " * depth
    for name, state in states.items():
        kind, node = state["Type"], ids.of[name]
        if kind in _CONTAINERS:
            lines.append(f'{pad}subgraph {node} ["{_text(name)}<br/>{_text(_container_note(state))}"]')
            branches = _scopes(state)
            for i, scope in enumerate(branches):
                if len(branches) > 1:  # a Parallel's branches, each in its own box
                    branch = ids.helper(f"{node}Branch{i + 1}")
                    lines.append(f'{pad}    subgraph {branch} ["branch {i + 1}"]')
                    _declare(scope["States"], ids, lines, classes, depth + 2)
                    lines.append(f"{pad}    end")
                else:
                    _declare(scope["States"], ids, lines, classes, depth + 1)
            lines.append(f"{pad}end")
            continue
        label = _text(name)
        detail = _task_action(state) if kind == "Task" else _wait_note(state) if kind == "Wait" else None
        if detail:
            label += "<br/>" + _text(detail)
        terminal = state.get("End") is True or kind in ("Fail", "Succeed")
        if kind == "Choice":
            shape = '{"%s"}'
        elif kind == "Wait":
            shape = '[/"%s"/]'
        elif terminal:
            shape = '(["%s"])'
        elif kind == "Pass":
            shape = '("%s")'
        else:
            shape = '["%s"]'
        lines.append(f"{pad}{node}{shape % label}")
        style = {"Choice": "choice", "Fail": "fail", "Succeed": "succeed"}.get(kind, "terminal" if terminal else None)
        if style:
            classes.setdefault(style, []).append(node)


def _container_note(state: dict) -> str:
    if state["Type"] == "Parallel":
        return f"Parallel: {len(state.get('Branches', []))} branches at once"
    items = state.get("ItemsPath") or state.get("Items")
    reader = state.get("ItemReader", {}).get("Resource")
    over = _short_path(items) if isinstance(items, str) else (_action_of_resource(reader) if reader else "its input")
    return f"Map: once per item of {over}"


def _wait_note(state: dict) -> str:
    for field in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath"):
        if field in state:
            value = state[field]
            return f"wait {value}s" if field == "Seconds" else f"wait until {_short_path(str(value))}"
    return "wait"


# --- what a Task calls --------------------------------------------------------------------------------------


def _task_action(state: dict) -> str:
    """``iam:createAccessKey``; ``lambda: PlanRun`` for the function a Lambda Task invokes."""
    resource = state.get("Resource", "")
    action = _action_of_resource(resource)
    if action == "lambda:invoke":
        arguments = state.get("Parameters") or state.get("Arguments") or {}
        function = arguments.get("FunctionName") if isinstance(arguments, dict) else None
        if isinstance(function, str):
            return f"lambda: {_function_name(function)}"
    return action


def _function_name(function: str) -> str:
    """``${KeyCheckFunctionArn}`` -> ``KeyCheck``; an ARN or a name -> the function's name."""
    placeholder = re.fullmatch(r"\$\{(\w+?)(?:FunctionArn|FunctionName|Arn)?\}", function)
    if placeholder:
        return placeholder.group(1)
    return _action_of_resource(function).removeprefix("lambda: ")


def _action_of_resource(resource: str) -> str:
    integration = re.match(r"arn:[^:]*:states:::(?:aws-sdk:)?([A-Za-z0-9-]+):([A-Za-z0-9]+)", resource)
    if integration:
        return f"{integration.group(1)}:{integration.group(2)}"
    function = re.match(r"arn:[^:]*:lambda:[^:]*:[^:]*:function:([^:]+)", resource)
    if function:
        return f"lambda: {function.group(1)}"
    return resource


# --- edges --------------------------------------------------------------------------------------------------


def _edges(name: str, state: dict, ids: _Ids) -> list[str]:
    source, edges = ids.of[name], []
    if "Next" in state:
        edges.append(f"{source} --> {ids.of[state['Next']]}")
    for rule in state.get("Choices", []):
        edges.append(f'{source} -->|"{_text(_cut(_condition(rule)))}"| {ids.of[rule["Next"]]}')
    if "Default" in state:
        edges.append(f'{source} -->|"otherwise"| {ids.of[state["Default"]]}')
    for catch in state.get("Catch", []):
        caught = ", ".join(_short_error(e) for e in catch["ErrorEquals"])
        edges.append(f'{source} -.->|"{_text(_cut(caught))}"| {ids.of[catch["Next"]]}')
    return edges


def _short_error(error: str) -> str:
    if error == "States.ALL":
        return "any error"
    short = error.rsplit(".", 1)[-1]
    return short[: -len("Exception")] if short.endswith("Exception") and short != "Exception" else short


_COMPARISONS = {"Equals": "=", "LessThan": "<", "GreaterThan": ">", "LessThanEquals": "<=", "GreaterThanEquals": ">="}


def _condition(rule: dict) -> str:
    """A Choice rule in a few words: ``plan.dryRun = true``, ``deactivateKeyId present``."""
    if "Condition" in rule:  # JSONata
        return _short_path(str(rule["Condition"]))
    if "And" in rule or "Or" in rule:
        joiner = " and " if "And" in rule else " or "
        parts = rule.get("And") or rule.get("Or")
        return joiner.join(f"({_condition(p)})" if ("And" in p or "Or" in p) else _condition(p) for p in parts)
    if "Not" in rule:
        return f"not ({_condition(rule['Not'])})"
    variable = _short_path(rule.get("Variable", "$"))
    for key, value in rule.items():
        if key in ("Variable", "Next", "Comment", "Assign", "Output"):
            continue
        on_path = key.endswith("Path")
        operator = key[: -len("Path")] if on_path else key
        shown = _short_path(value) if on_path else json.dumps(value)
        if operator == "IsPresent":
            return f"{variable} {'present' if value else 'absent'}"
        if operator == "IsNull":
            return f"{variable} {'is' if value else 'not'} null"
        if operator in ("IsBoolean", "IsNumeric", "IsString", "IsTimestamp"):
            return f"{variable} is {'' if value else 'not '}{operator[2:].lower()}"
        if operator == "StringMatches":
            return f"{variable} matches {shown}"
        for suffix, symbol in sorted(_COMPARISONS.items(), key=lambda item: -len(item[0])):
            if operator.endswith(suffix):
                return f"{variable} {symbol} {shown}"
        return f"{variable} {operator} {shown}"
    return variable


def _short_path(path: str) -> str:
    """``$.plan.dryRun`` -> ``plan.dryRun``; ``{% $states.input.x %}`` -> ``x``."""
    path = path.strip()
    if path.startswith("{%") and path.endswith("%}"):  # a JSONata expression
        path = path[2:-2].strip()
    for prefix in ("$states.input.", "$."):
        path = path.replace(prefix, "")
    return path


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1].rstrip() + "…"


def _text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: the characters Mermaid or HTML would read as code, as entities."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text
