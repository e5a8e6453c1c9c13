"""One scheduled run on the emulator, measured: what Step Functions' limits see and what AWS would bill.

Everything is counted from the execution histories (the run's own and every child execution's) and from the AWS
calls made in-process (emulator/metrics.py), never from state names, so the figures stay right when the ASL
changes. A user is classified by the plan item its batch acted on (rotate, deactivate, delete, record, grant), or
as untouched when no batch acted on it.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import boto3

from emulator import history, stack
from emulator.metrics import Invocation, metering
from emulator.runner import Emulator, Run

PARENT_EVENT_LIMIT = 1_000  # the issue's bound for the parent history (Step Functions' own is 25,000)
CHILD_EVENT_LIMIT = 25_000  # Step Functions' limit on any execution's history, a child's included
PAYLOAD_LIMIT_BYTES = 128 * 1024  # this project's bound on any state's input or output (Step Functions' is 256 KiB)
PLANNING = ("PlanRun", "PlanBatch", "QueueActions")  # the functions of the read-only phase


@dataclass
class Payload:
    bytes: int = 0
    where: str = ""


@dataclass
class FunctionFigures:
    invocations: int = 0
    seconds: float = 0.0  # on the emulator, all invocations together
    calls: int = 0  # the AWS calls its handlers made
    memory_mb: int = 0
    timeout: int = 0
    longest_calls: int = 0  # the most AWS calls one invocation made
    longest_in_flight: int = 1  # the most calls that invocation had under way at once


@dataclass
class Figures:
    fleet: str
    managed_users: int
    status: str
    summary: dict  # the run's output, without the list of users
    parent_events: int
    children: int
    largest_child_events: int
    largest_child: str
    largest_payload: Payload
    states_entered: int  # across every history: what Step Functions bills as transitions
    states_by_part: dict[str, int]  # "run" (its own history), "planning", "acting", "emails" (child executions)
    users_by_class: dict[str, int]
    states_per_user: dict[str, float]  # class -> states its own Map iteration entered, on average
    calls_per_user: dict[str, float]  # class -> AWS calls that named the user, on average
    calls_per_untouched_user: float  # the planning calls not made for a user acted on, per untouched user
    own_calls_per_untouched_user: float  # of those, the calls that name the user (ListAccessKeys); the rest are shared
    calls_by_operation: dict[str, int]
    calls_by_phase: dict[str, dict[str, int]]  # "planning" (the PLANNING functions' calls) or "acting" -> operation -> calls
    functions: dict[str, FunctionFigures]
    seconds_seeding: float
    seconds_run: float
    invariant_violations: list[str] = field(default_factory=list)
    leaks: int = 0


def run_measured(aws: Emulator) -> tuple[Run, list, list[Invocation], float]:
    """One scheduled run, with every AWS call and Lambda invocation it caused."""
    with metering(exclude=[aws.sfn]) as meter:
        started = time.perf_counter()
        run = aws.scheduled_run()
        seconds = time.perf_counter() - started
    return run, meter.calls, meter.invocations, seconds


def figures(aws: Emulator, fleet: str, seconds_seeding: float) -> Figures:
    run, calls, invocations, seconds = run_measured(aws)
    acted = _acted_users(run)  # user -> class
    by_class = Counter(acted.values())
    managed = (run.output or {}).get("managedUsers", 0)
    by_class["untouched"] = managed - len(acted)

    iteration_states: dict[str, list[int]] = defaultdict(list)
    states_by_part = Counter(run=len(history.states_entered(run.events)))
    for child in run.children:
        part = _part(child.input)
        states_by_part[part] += len(history.states_entered(child.events))
        if part != "acting":
            continue
        items = child.input["users"]
        for index, events in history.iterations(child.events).items():
            iteration_states[_class_of(items[index])].append(len(history.states_entered(events)))

    prefix = aws.secret_prefix
    calls_for: dict[str, Counter] = defaultdict(Counter)
    by_phase: dict[str, Counter] = {"planning": Counter(), "acting": Counter()}
    planning_not_for_acted = own_for_untouched = 0
    for call in calls:
        planning = call.invocation is not None and _short(call.invocation.function) in PLANNING
        by_phase["planning" if planning else "acting"][call.name] += 1
        user = _user_named(call.params, prefix)
        if user in acted:
            calls_for[acted[user]][user] += 1
        elif planning:
            planning_not_for_acted += 1
            own_for_untouched += user is not None

    child_sizes = [(len(c.events), c.name) for c in run.children] or [(0, "none")]
    largest_child_events, largest_child = max(child_sizes)
    return Figures(
        fleet=fleet,
        managed_users=managed,
        status=run.status,
        summary={k: v for k, v in (run.output or {}).items() if k != "users"},
        parent_events=len(run.events),
        children=len(run.children),
        largest_child_events=largest_child_events,
        largest_child=largest_child,
        largest_payload=_largest_payload(run),
        states_entered=len(run.states_entered()),
        states_by_part=dict(states_by_part),
        users_by_class=dict(by_class),
        states_per_user={c: sum(n) / len(n) for c, n in sorted(iteration_states.items())},
        calls_per_user={c: sum(per.values()) / by_class[c] for c, per in sorted(calls_for.items())},
        calls_per_untouched_user=planning_not_for_acted / max(1, by_class["untouched"]),
        own_calls_per_untouched_user=own_for_untouched / max(1, by_class["untouched"]),
        calls_by_operation=dict(Counter(c.name for c in calls).most_common()),
        calls_by_phase={phase: dict(ops.most_common()) for phase, ops in by_phase.items()},
        functions=_functions(invocations),
        seconds_seeding=seconds_seeding,
        seconds_run=seconds,
        invariant_violations=aws.invariant_violations(run),
        leaks=len(aws.leaked_texts(run)),
    )


def function_configs(aws: Emulator, found: dict[str, FunctionFigures]) -> None:
    """Add each function's memory and timeout, as deployed, to its figures."""
    client = boto3.client("lambda", region_name=stack.REGION)
    for name in aws.deployment.functions:
        config = client.get_function_configuration(FunctionName=name)
        figures_ = found.setdefault(_short(name), FunctionFigures())
        figures_.memory_mb, figures_.timeout = config["MemorySize"], config["Timeout"]


def _part(child_input) -> str:
    """Which Distributed Map a child execution belongs to, by what it was given."""
    given = child_input if isinstance(child_input, dict) else {}
    if "to" in given:
        return "emails"
    users = given.get("users") or [{}]
    return "acting" if "outcome" in users[0] else "planning"


def _class_of(item: dict) -> str:
    if item.get("rotate"):
        return "rotate"
    if item.get("deactivateKeyId"):
        return "deactivate"
    if item.get("deleteKeyId"):
        return "delete"
    return item.get("outcome", "other")


def _acted_users(run: Run) -> dict[str, str]:
    return {
        item["user"]: _class_of(item)
        for child in run.children
        if isinstance(child.input, dict)
        for item in child.input.get("users") or []
        if "outcome" in item
    }


def _user_named(params: dict, secret_prefix: str) -> str | None:
    """The user an AWS call is for: its UserName, or the user its secret is named for."""
    if isinstance(params.get("UserName"), str):
        return params["UserName"]
    for name in (params.get("SecretId"), params.get("Name")):
        if isinstance(name, str) and name.startswith(secret_prefix):
            return name[len(secret_prefix) :]
    return None


def _largest_payload(run: Run) -> Payload:
    """The largest state input or output, Task parameters or result, in any of the run's histories."""
    largest = Payload()
    for events, where in [(run.events, "the run")] + [(c.events, f"child {c.name}") for c in run.children]:
        for event in events:
            for key, details in event.items():
                if not (key.endswith("EventDetails") and isinstance(details, dict)):
                    continue
                for name in ("input", "output", "parameters"):
                    value = details.get(name)
                    if isinstance(value, str) and len(value) * 4 > largest.bytes:  # bytes <= 4 x characters
                        size = len(value.encode())
                        if size > largest.bytes:
                            state = details.get("name") or event["type"]
                            largest = Payload(size, f"{state} {name} in {where}")
    return largest


def _short(function_name: str) -> str:
    """key-rotation-PlanRunFunction -> PlanRun."""
    return function_name.rsplit("-", 1)[-1].removesuffix("Function")


def _functions(invocations: list[Invocation]) -> dict[str, FunctionFigures]:
    found: dict[str, FunctionFigures] = {}
    for inv in invocations:
        f = found.setdefault(_short(inv.function), FunctionFigures())
        f.invocations += 1
        f.seconds += inv.seconds
        f.calls += len(inv.calls)
        if len(inv.calls) > f.longest_calls:
            f.longest_calls, f.longest_in_flight = len(inv.calls), max(1, inv.max_in_flight)
    return found


def as_json(value):
    if hasattr(value, "__dataclass_fields__"):
        return {k: as_json(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def dumps(value) -> str:
    return json.dumps(as_json(value), indent=2)
