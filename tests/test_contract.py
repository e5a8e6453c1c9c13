"""The contract between the state machine and the functions has one home, functions/rotation/contract.py.

- every Lambda Task sends its function the event its type defines, and reads from the result only fields the
  result's type defines;
- every field a state reads ($.a.b) is in the input its scope is given (the run's, a child execution's item, a
  Map iteration's item) or written by a state that can run before it, and a field of a typed value is one its
  type defines;
- every path of a user's steps ends in a UserResult, and each batch in an ActBatchResult;
- every field a handler reads from its event is one the event's type defines;
- every field an SDK Task reads from the API's answer is in the API's model (botocore's).
"""

import ast
import json
import typing
from pathlib import Path

import botocore.session
import pytest

import contract

ROOT = Path(__file__).resolve().parent.parent
ASL = json.loads((ROOT / "statemachine" / "rotation.asl.json").read_text())
ROTATION = ROOT / "functions" / "rotation"

# Each Lambda Task: the type of the event it sends and of the result it reads.
TASKS = {
    "Plan the run": (contract.PlanRunEvent, contract.RunPlan),
    "Plan the batch's users": (contract.BatchToPlan, contract.BatchPlan),
    "Queue the actions": (contract.QueueEvent, contract.Queue),
    "Prove the stored key works": (contract.KeyCheckEvent, contract.KeyCheckResult),
    "Check the key is still inactive": (contract.KeyStatusEvent, contract.KeyStatusResult),
    "Look for unstored keys": (contract.ReconcileEvent, contract.ReconcileResult),
    "Report the run": (contract.ReportEvent, contract.Report),
}
# What each Map's iterations are given, when no ItemSelector says.
ITEMS = {
    "Plan each batch of users": contract.BatchToPlan,
    "Act on each batch of users": contract.ActBatch,
    "Act on each user": contract.PlanItem,
    "Email each owner": contract.OwnerEmail,
}
# Each handler module: the type of its event.
HANDLERS = {
    ROTATION / "plan_run.py": contract.PlanRunEvent,
    ROTATION / "plan_batch.py": contract.BatchToPlan,
    ROTATION / "queue_actions.py": contract.QueueEvent,
    ROTATION / "key_status.py": contract.KeyStatusEvent,
    ROTATION / "reconcile.py": contract.ReconcileEvent,
    ROTATION / "report_run.py": contract.ReportEvent,
    ROOT / "functions" / "key_check" / "key_check.py": contract.KeyCheckEvent,
}
ERROR = {"Error": None, "Cause": None}  # what a Catch's ResultPath writes


def fields(kind) -> dict:
    """A TypedDict's fields -> each field's TypedDict (or None for a plain value)."""
    hints = typing.get_type_hints(kind, include_extras=True)
    return {name: _typed(hint) for name, hint in hints.items()}


def _typed(hint):
    for candidate in [hint, *typing.get_args(hint)]:
        candidate = typing.get_args(candidate)[0] if typing.get_origin(candidate) is typing.NotRequired else candidate
        if typing.is_typeddict(candidate):
            return candidate
    return None


def required(kind) -> set[str]:
    """The fields a value of the type always has (contract.py's annotations are strings, so TypedDict's own
    __required_keys__ cannot see NotRequired)."""
    if not kind.__total__:
        return set()
    hints = typing.get_type_hints(kind, include_extras=True)
    return {name for name, hint in hints.items() if typing.get_origin(hint) is not typing.NotRequired}


def scopes(states: dict, given: dict, name: str = "the run"):
    """Each scope's states and what its iterations (or the run) are given: fields -> nested shape or type."""
    yield name, states, given
    for state_name, state in states.items():
        if "ItemProcessor" not in state:
            continue
        if "ItemSelector" in state:
            item = {k.removesuffix(".$"): None for k in state["ItemSelector"]}
        else:
            item = fields(ITEMS[state_name])
        yield from scopes(state["ItemProcessor"]["States"], item, state_name)


def successors(state: dict) -> list[str]:
    found = [state.get("Next"), state.get("Default")]
    found += [c.get("Next") for c in state.get("Choices", [])] + [c.get("Next") for c in state.get("Catch", [])]
    return [n for n in found if n]


def can_run_before(states: dict) -> dict[str, set[str]]:
    """Each state -> the states of its scope that can run before it (cycles included)."""
    before = {name: set() for name in states}
    for start in states:
        seen, todo = set(), successors(states[start])
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            before[name].add(start)
            todo += successors(states[name])
    return before


def writes(name: str, state: dict) -> list[tuple[list[str], object]]:
    """(ResultPath's fields, the shape written there) for what a state writes into its input; a ResultPath of $
    (the default) writes each field of its output at the top."""
    path = state.get("ResultPath", "$")
    if state["Type"] == "Map":
        output = None  # a list of results, or ResultWriter's details: read whole
    elif "ResultSelector" in state:
        output = {k.removesuffix(".$"): _selected(name, v) for k, v in state["ResultSelector"].items()}
    elif state["Type"] == "Pass" and "Parameters" in state:
        output = {k.removesuffix(".$"): None for k in state["Parameters"]}
    else:
        output = None
    found = []
    if path == "$" and isinstance(output, dict):
        found += [([key], shape) for key, shape in output.items()]
    elif isinstance(path, str) and path.startswith("$."):
        found.append((path[2:].split("."), output))
    for catch in state.get("Catch", []):
        if (catch.get("ResultPath") or "").startswith("$."):
            found.append((catch["ResultPath"][2:].split("."), ERROR))
    return found


def _selected(task: str, value):
    """The shape a ResultSelector picks from a Lambda Task's result: the result's type, or one of its fields'."""
    if task not in TASKS or not isinstance(value, str):
        return None
    if value == "$.Payload":
        return TASKS[task][1]
    return fields(TASKS[task][1]).get(value.removeprefix("$.Payload."))


def paths_read(state: dict) -> list[str]:
    """The JSONPaths a state reads from its input (not the task's result, not the context object)."""
    found = []

    def walk(node, key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and node.startswith("$.") and (
            key is None or key.endswith(".$") or key in ("Variable", "ItemsPath", "InputPath")
        ):
            found.append(node)

    for key in ("Parameters", "ItemsPath", "InputPath", "ItemSelector", "Choices", "ItemReader", "ResultWriter"):
        if key in state:
            walk(state[key], key if isinstance(state[key], str) else None)
    return found


def shape_at(shape, segments: list[str], where: str) -> None:
    """Check ``segments`` can be read from ``shape`` (fields -> shape), as far as the shape is known."""
    for i, segment in enumerate(segments):
        if shape is None:
            return
        if isinstance(shape, type) and typing.is_typeddict(shape):
            shape = fields(shape)
        assert segment in shape, f"{where}: reads {'.'.join(segments[: i + 1])}, which nothing before it defines"
        shape = shape[segment]


def merge(into: dict, segments: list[str], shape) -> None:
    """Add what a state writes at ``segments`` to the fields available after it."""
    for segment in segments[:-1]:
        current = into.get(segment)
        if isinstance(current, type):
            current = fields(current)
        if not isinstance(current, dict):
            return  # written into something untyped: it stays open
        into[segment] = current = dict(current)
        into = current
    last, existing = segments[-1], into.get(segments[-1])
    if isinstance(existing, type):
        existing = fields(existing)
    if isinstance(existing, dict) and isinstance(shape, dict):
        into[last] = {**existing, **shape}  # two states write there: either's fields may be read
    elif last in into and existing is None or shape is None:
        into[last] = None  # written whole by some state: open
    else:
        into[last] = shape


ALL_SCOPES = list(scopes(ASL["States"], {}))


@pytest.mark.parametrize("scope_name, states, given", ALL_SCOPES, ids=[s[0] for s in ALL_SCOPES])
def test_every_field_a_state_reads_is_given_or_written_before_it(scope_name, states, given):
    check_reads(states, given, scope_name)


def test_a_misspelt_or_unwritten_field_is_caught():
    asl = json.loads(json.dumps(ASL))
    asl["States"]["Queue the actions"]["Parameters"]["Payload"]["run.$"] = "$.run.bukcet"
    with pytest.raises(AssertionError, match="reads run.bukcet"):
        check_reads(asl["States"], {}, "the run")
    steps = asl["States"]["Act on each batch of users"]["ItemProcessor"]["States"]["Act on each user"]["ItemProcessor"]["States"]
    steps["Report rotated user"]["Parameters"]["newKeyId.$"] = "$.keyCheck.newKeyId"  # written, without that field
    with pytest.raises(AssertionError, match="reads keyCheck.newKeyId"):
        check_reads(steps, fields(contract.PlanItem), "Act on each user")


def check_reads(states: dict, given: dict, scope_name: str) -> None:
    before = can_run_before(states)
    for name, state in states.items():
        available = dict(given)
        for earlier in before[name]:
            for segments, shape in writes(earlier, states[earlier]):
                merge(available, segments, shape)
        for path in paths_read(state):
            if name == "Plan the run":
                continue  # it reads the execution's input, whatever a person started it with
            shape_at(available, path[2:].split("."), f"{scope_name} > {name}")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_function_is_sent_its_event_and_read_for_its_result(name):
    event_type, result_type = TASKS[name]
    state = next(s for _, states, _ in ALL_SCOPES for n, s in states.items() if n == name)
    sent = {k.removesuffix(".$") for k in state["Parameters"]["Payload"]}
    assert required(event_type) <= sent <= set(fields(event_type)), f"{name} sends {sorted(sent)}"
    if "ResultSelector" in state:
        for value in state["ResultSelector"].values():
            if isinstance(value, str) and value.startswith("$.Payload."):
                assert value.split(".")[2] in fields(result_type), f"{name} reads {value}"
    else:
        assert state.get("OutputPath") == "$.Payload", f"{name}: the result whole, as {result_type.__name__}"


def test_every_path_of_a_users_steps_ends_in_a_user_result():
    user_steps = next(states for name, states, _ in ALL_SCOPES if name == "Act on each user")
    ends = {n: s for n, s in user_steps.items() if s.get("End")}
    assert ends and all(s["Type"] == "Pass" for s in ends.values()), sorted(ends)
    for name, state in ends.items():
        written = {k.removesuffix(".$") for k in state["Parameters"]}
        assert required(contract.UserResult) <= written <= set(fields(contract.UserResult)), name
    batch = next(states for name, states, _ in ALL_SCOPES if name == "Act on each batch of users")
    (done,) = [s for s in batch.values() if s.get("End")]
    assert {k.removesuffix(".$") for k in done["Parameters"]} == set(fields(contract.ActBatchResult))


@pytest.mark.parametrize("path", sorted(HANDLERS), ids=lambda p: p.name)
def test_every_field_a_handler_reads_from_its_event_is_in_its_type(path):
    event_type = HANDLERS[path]
    allowed = set(fields(event_type))
    tree = ast.parse(path.read_text())
    read = set()
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        names = {a.arg for a in function.args.args if a.arg == "event" or _annotation(a) == event_type.__name__}
        for node in ast.walk(function):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in names:
                if isinstance(node.slice, ast.Constant):
                    read.add(node.slice.value)
            if (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                read.add(node.args[0].value)
    assert read, f"{path.name}: found no reads of its event (is the test looking at the right names?)"
    assert read <= allowed, f"{path.name} reads {sorted(read - allowed)}, which {event_type.__name__} does not define"


def _annotation(arg: ast.arg) -> str | None:
    return arg.annotation.id if isinstance(arg.annotation, ast.Name) else None


def test_every_field_an_sdk_task_reads_from_the_answer_is_in_the_apis_model():
    session = botocore.session.get_session()
    checked = 0
    for _, states, _ in ALL_SCOPES:
        for name, state in states.items():
            resource = state.get("Resource", "")
            if ":aws-sdk:" not in resource or "ResultSelector" not in state:
                continue
            service, action = resource.split(":aws-sdk:")[1].split(":")
            model = session.get_service_model({"sfn": "stepfunctions"}.get(service, service))
            shape = model.operation_model(action[0].upper() + action[1:]).output_shape
            for value in state["ResultSelector"].values():
                if not (isinstance(value, str) and value.startswith("$.")):
                    continue
                member = shape
                for segment in value[2:].split("."):
                    # aws-sdk Tasks name every member in PascalCase, whatever the API's own casing (sfn's is camel)
                    pascal = {m[0].upper() + m[1:]: m for m in member.members}
                    assert segment in pascal, f"{name} reads {value}: not in {service}'s {action} answer"
                    member = member.members[pascal[segment]]
                checked += 1
    assert checked >= 2  # the ResultSelectors of the SDK Tasks that keep only part of the answer
