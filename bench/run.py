"""Benchmark: the real template on the emulator for fleets of managed users, one scheduled run each.

    python -m bench.run                          # fleets of 100, 1,000 and 10,000 users (make bench)
    python -m bench.run --fleets 100,1000 --json
    python -m bench.run --param MaxUsersPerRun=500

For each fleet it deploys template.yaml on a fresh emulated account, seeds the fleet straight into moto's
backends (timed apart, not part of the run), starts one scheduled run and prints:

- wall time: seeding, planning (the plan phase's Lambda invocation), the whole run;
- states entered per user, by what the run did to the user (from the plan the run returned), and per run;
- AWS API calls per user by the same classes, and in total by service and operation. Every call the state
  machine's SDK tasks and the Lambda functions make goes through botocore in-process and is counted there
  (emulator/metrics.py); the benchmark's own start/describe/history reads are not;
- the largest payload in the execution history (state input or output, task parameters or result, Lambda
  payloads) against Step Functions' 256 KiB limit, and the history's event count against its 25,000 limit;
- the cost this projects (assumed list prices, below) per 1,000 rotations and per month for 10,000 users.

In the same invocation it deploys bench/original-design.asl.json (the original blog design: list keys, delete
the first, create, update the secret, email) as a second state machine with the stack's role, and runs it and
ours for one due user each, side by side.

Everything is counted from the execution history and the calls, never from state names, so the figures stay
right when the ASL changes. Users are classified from the plan the pre-flight Lambda returns (its ``actions``
items' ``user`` and ``outcome``) and by which users' Map iterations ran.

The fleet is deterministic (``--seed``): current key ages spread uniformly over 0..120 days, so a quarter
is due at MaxKeyAgeDays 90 and most are not; 90% hold their key in the secret (the workflow rotated them
before); users rotated less than install + recovery window days ago still have the previous key, Active
inside the install window and Inactive (tagged with when) inside the recovery window; 1% have a second Active
key made outside the workflow (blocked). The first two users are always one due for deactivation and one due
for deletion, so every kind of action is measured even in a small fleet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import boto3

from emulator import account, stack
from emulator.metrics import ApiCall, Invocation, metering
from emulator.runner import Emulator

import decisions  # noqa: E402  (on sys.path through the emulator package, as in the Lambda runtime)

ORIGINAL_DESIGN = Path(__file__).resolve().parent / "original-design.asl.json"
START = "2026-01-05T06:00:00Z"
SENDER = "key-rotation@example.com"
RECIPIENT = "platform-team@example.com"
BASE_PARAMETERS = {"SenderEmail": SENDER, "NotificationEmails": RECIPIENT}
DEFAULT_FLEETS = (100, 1_000, 10_000)

# Step Functions service quotas (Standard workflows).
HISTORY_EVENT_LIMIT = 25_000
PAYLOAD_LIMIT_BYTES = 256 * 1024

# Assumed list prices, us-east-1 (check https://aws.amazon.com/step-functions/pricing/ and
# https://aws.amazon.com/lambda/pricing/ before relying on them).
PRICE_PER_TRANSITION = 0.025 / 1_000  # Step Functions Standard, per state transition
PRICE_PER_GB_SECOND_ARM64 = 0.0000133334  # Lambda, arm64
PRICE_PER_GB_SECOND_X86 = 0.0000166667  # Lambda, x86_64
PRICE_PER_REQUEST = 0.20 / 1_000_000  # Lambda requests
PRICE_PER_SECRET_MONTH = 0.40  # Secrets Manager, per secret stored
PRICE_PER_SECRETS_API_CALL = 0.05 / 10_000  # Secrets Manager API calls
DAYS_PER_MONTH = 30
PROJECTED_USERS = 10_000
# An emulated call takes moto's time; on AWS each call the Lambda makes waits for the network and the service.
DEFAULT_API_LATENCY_MS = 25.0


# ---------------------------------------------------------------------------------------------------------
# One fix to moto, for this benchmark


@contextlib.contextmanager
def secrets_found_by_name():
    """Look a secret up by its name in the dict that moto keys by name, before moto's scan of every secret.

    moto 5.2.5's SecretsStore finds a secret by comparing the id with every stored secret's ARN and name. With
    10,000 secrets that makes each DescribeSecret or PutSecretValue scan the whole store (16.5 s of a 227 s
    CPU profile of the 10,000-user run), and a scan on one Map thread while another thread's CreateSecret adds
    a secret fails with "dictionary changed size during iteration": 2 and 5 users failed that way in 2 of 4
    10,000-user runs without this fix (States.Runtime, then the key was deleted unstored). AWS has neither problem, so the benchmark takes the name path
    first; an ARN still goes through moto's scan. (emulator/faithful_moto.py is the place for this fix.)"""
    from moto.secretsmanager.models import SecretsStore

    scan_contains, scan_getitem, scan_get = SecretsStore.__contains__, SecretsStore.__getitem__, SecretsStore.get

    def contains(store, key):
        return dict.__contains__(store, key) or scan_contains(store, key)

    def getitem(store, key):
        return dict.__getitem__(store, key) if dict.__contains__(store, key) else scan_getitem(store, key)

    def get(store, key):
        return dict.__getitem__(store, key) if dict.__contains__(store, key) else scan_get(store, key)

    with mock.patch.object(SecretsStore, "__contains__", contains), mock.patch.object(
        SecretsStore, "__getitem__", getitem
    ), mock.patch.object(SecretsStore, "get", get):
        yield


# ---------------------------------------------------------------------------------------------------------
# The fleet


@dataclass(frozen=True)
class UserSpec:
    name: str
    age: timedelta  # the current key's age
    in_secret: bool  # the secret holds the current key (the workflow stored it)
    previous: str | None = None  # "Active" or "Inactive": the key the last rotation replaced, inside its windows
    inactive_for: timedelta | None = None  # how long the previous key has been Inactive (its inactive-since tag)
    extra_active: bool = False  # a newer Active key made outside the workflow: blocked

    def expected(self, policy: decisions.Policy) -> str:
        """What a run at seeding time does, by the README's rules: rotate, retire, blocked or unchanged."""
        if self.extra_active:
            return "blocked"
        if self.age >= policy.max_key_age:
            return "rotate"
        if self.previous == "Active" and self.age >= policy.install_window:
            return "retire"
        if self.previous == "Inactive" and self.inactive_for >= policy.recovery_window:
            if self.age >= policy.install_window + policy.recovery_window:
                return "retire"
        return "unchanged"


def make_fleet(size: int, policy: decisions.Policy, seed: int = 1) -> list[UserSpec]:
    """``size`` managed users with realistic key ages (see the module docstring); the same for the same seed."""
    rng = random.Random(f"{seed}:{size}")
    install, recovery = policy.install_window, policy.recovery_window
    day = timedelta(days=1)
    specs = []
    for i in range(size):
        name = f"svc-{i:05d}"
        if i == 0:  # rotated just over an install window ago: its previous key is due for deactivation
            age, in_secret = install + day / 2, True
        elif i == 1:  # its previous key has been Inactive for a whole recovery window: due for deletion
            age, in_secret = install + recovery + day / 2, True
        else:
            age, in_secret = timedelta(days=rng.uniform(0, 120)), rng.random() < 0.9
        age = timedelta(seconds=round(age.total_seconds()))
        previous = inactive_for = None
        if in_secret and age < install + recovery + day:  # rotated by the workflow within its windows
            if age < install + day:
                previous = "Active"  # deactivated by the first run at or after the install window
            else:
                previous, inactive_for = "Inactive", age - install
        extra = i > 1 and previous is None and in_secret and rng.random() < 0.01
        specs.append(UserSpec(name, age, in_secret, previous, inactive_for, extra))
    return specs


def seed_fleet(specs: list[UserSpec], now: datetime, parameters: dict[str, str], policy: decisions.Policy) -> None:
    """Create the users, keys, tags and secrets straight in moto's backends (the API would take minutes at
    10,000 users). The result is what account.seed makes from a fixture: keys backdated, each stored key a
    secret version named for it and the user's key-rotation:secret tag, an Inactive key's inactive-since tag."""
    from moto.iam.models import iam_backends
    from moto.secretsmanager.models import secretsmanager_backends

    iam = iam_backends[stack.ACCOUNT_ID]["global"]
    sm = secretsmanager_backends[stack.ACCOUNT_ID][stack.REGION]
    tag_key, tag_value = parameters["UserTagKey"], parameters["UserTagValue"]
    tags = [{"Key": tag_key, "Value": tag_value}] if tag_key else []

    def created(age: timedelta) -> datetime:
        return (now - age).astimezone(timezone.utc).replace(tzinfo=None)

    for spec in specs:
        iam.create_user(stack.REGION, spec.name, parameters["UserPath"], [dict(t) for t in tags])
        stored = []
        if spec.previous:
            previous = iam.create_access_key(spec.name)
            previous.create_date = created(spec.age + policy.max_key_age)
            if spec.previous == "Inactive":
                previous.status = "Inactive"
                since = decisions.format_time(now - spec.inactive_for)
                iam.tag_user(spec.name, [{"Key": decisions.inactive_since_tag(previous.access_key_id), "Value": since}])
            stored.append(previous)
        current = iam.create_access_key(spec.name)
        current.create_date = created(spec.age)
        if spec.extra_active:
            iam.create_access_key(spec.name).create_date = created(spec.age / 2)
        if not spec.in_secret:
            continue
        stored.append(current)
        secret_name = parameters["SecretNamePrefix"] + spec.name
        iam.tag_user(spec.name, [{"Key": decisions.SECRET_TAG, "Value": secret_name}])  # as the workflow tags it
        for n, key in enumerate(stored):  # the last one written is AWSCURRENT, the one before AWSPREVIOUS
            value = json.dumps(
                {"Version": 1, "UserName": spec.name, "AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}
            )
            token = decisions.key_version_id(key.access_key_id)
            if n == 0:
                sm.create_secret(
                    name=secret_name, secret_string=value, secret_binary=None, description=None, tags=None,
                    kms_key_id=None, client_request_token=token, replica_regions=[], force_overwrite=False,
                )
            else:
                sm.put_secret_value(
                    secret_id=secret_name, secret_string=value, secret_binary=None,
                    client_request_token=token, version_stages=["AWSCURRENT"],
                )


# ---------------------------------------------------------------------------------------------------------
# One execution, measured


@dataclass
class Measured:
    status: str
    output: dict | None
    error: str | None
    cause: str | None
    events: list[dict]
    calls: list[ApiCall]
    invocations: list[Invocation]
    seconds: float  # start_execution until it returned (executions run synchronously on the emulator)


def run_measured(machine_arn: str, name: str, execution_input: dict) -> Measured:
    sfn = boto3.client("stepfunctions", region_name=stack.REGION)
    with metering(exclude=[sfn]) as meter:
        started = time.perf_counter()
        arn = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(execution_input))["executionArn"]
        seconds = time.perf_counter() - started
    described = sfn.describe_execution(executionArn=arn)
    events = execution_history(sfn, arn)
    if any(e["type"].startswith("MapRun") for e in events):
        raise SystemExit(
            "bench: the run uses a Distributed Map, whose items run as child executions with their own "
            "histories; bench/run.py counts the parent's history only and must be taught to read them."
        )
    output = json.loads(described["output"]) if described.get("output") else None
    return Measured(
        described["status"], output, described.get("error"), described.get("cause"), events, meter.calls,
        meter.invocations, seconds,
    )


def execution_history(sfn, arn: str) -> list[dict]:
    """The execution's history events, as GetExecutionHistory returns them.

    Read from moto's backend: the same events, without moto serializing them and botocore parsing them back,
    which takes 4-5 s for the 7,263 events of a 1,000-user run (0.04 s from the backend)."""
    try:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        events = stepfunctions_parser_backends[stack.ACCOUNT_ID][stack.REGION].get_execution_history(arn)["events"]
        return [{**e, "type": getattr(e["type"], "value", e["type"])} for e in events]  # the API's plain strings
    except (ImportError, KeyError, AttributeError):
        events, token = [], None
        while True:
            page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events


_ITERATION_ENDS = ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted")


@dataclass
class HistoryFigures:
    events: int
    states_entered: int
    run_states: int  # states entered outside any user's iteration
    user_states: dict[str, int]  # user -> states entered in its Map iteration(s)
    user_events: dict[str, int]
    largest_payload: int
    largest_payload_at: str
    task_errors: dict[str, int]  # error name -> how many task attempts failed with it (caught or not)


def read_history(events: list[dict]) -> HistoryFigures:
    """Attribute each history event to the outermost Map iteration it belongs to, following previousEventId
    (inline Map iterations interleave), and each iteration to the user its first state's input names."""
    by_id = {e["id"]: e for e in events}
    owner: dict[int, int | None] = {0: None}
    starts: dict[int, dict] = {}
    top_level_ends: set[int] = set()
    iteration_user: dict[int, str] = {}
    for e in sorted(events, key=lambda e: e["id"]):
        prev = e.get("previousEventId", 0)
        current = None if prev in top_level_ends else owner.get(prev)
        details = next((v for k, v in e.items() if k.endswith("EventDetails")), {})
        # A worker that finishes an iteration starts the next one from its last event, so a new iteration of
        # the same Map (state names are unique in a state machine) starts a new user even inside another.
        if e["type"] == "MapIterationStarted" and (current is None or details.get("name") == starts[current].get("name")):
            current = e["id"]
            starts[current] = details
        elif e["type"] in _ITERATION_ENDS and current is not None and details.get("name") == starts[current].get("name"):
            top_level_ends.add(e["id"])
        owner[e["id"]] = current
        entered = e.get("stateEnteredEventDetails")
        if entered and current is not None and current not in iteration_user:
            try:
                user = json.loads(entered.get("input") or "{}").get("user")
            except (ValueError, AttributeError):
                user = None
            iteration_user[current] = user if isinstance(user, str) else f"#iteration{starts[current].get('index')}"

    user_states: Counter = Counter()
    user_events: Counter = Counter()
    run_states = 0
    largest, largest_at = 0, ""
    for e in events:
        it = owner.get(e["id"])
        user = iteration_user.get(it) if it is not None else None
        if it is not None:
            user_events[user or f"#iteration{starts[it].get('index')}"] += 1
        if "stateEnteredEventDetails" in e:
            if user is None and it is None:
                run_states += 1
            else:
                user_states[user or f"#iteration{starts[it].get('index')}"] += 1
        for key, details in e.items():
            if not (key.endswith("EventDetails") and isinstance(details, dict)):
                continue
            for field_name in ("input", "output", "parameters"):
                value = details.get(field_name)
                if isinstance(value, str) and len(value) >= largest // 4:  # bytes <= 4 x characters
                    size = len(value.encode())
                    if size > largest:
                        largest, largest_at = size, f"{e['type']} {field_name} of '{_state_of(e, by_id)}'"
    return HistoryFigures(
        events=len(events),
        states_entered=sum(1 for e in events if "stateEnteredEventDetails" in e),
        run_states=run_states,
        user_states=dict(user_states),
        user_events=dict(user_events),
        largest_payload=largest,
        largest_payload_at=largest_at,
        task_errors=dict(sorted(Counter(
            details.get("error", "?")
            for e in events if e["type"].endswith("Failed") and e["type"] not in ("ExecutionFailed",) and not e["type"].startswith("Map")
            for k, details in e.items() if k.endswith("EventDetails") and isinstance(details, dict)
        ).items())),
    )


def _state_of(event: dict, by_id: dict[int, dict]) -> str:
    """The state an event belongs to: its own name, or the state entered just before it in its chain."""
    e = event
    for _ in range(8):
        for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
            if key in e:
                return e[key]["name"]
        e = by_id.get(e.get("previousEventId", 0))
        if e is None:
            break
    return "the execution"


def call_user(call: ApiCall, secret_prefix: str) -> str | None:
    """The user a call acts for: its UserName, its secret's name, its Lambda payload's user, or the user of the
    Lambda invocation it was made in."""
    params = call.params
    if isinstance(params.get("UserName"), str):
        return params["UserName"]
    for name in ("SecretId", "Name"):
        value = params.get(name)
        if isinstance(value, str) and value.startswith(secret_prefix):
            return value[len(secret_prefix):]
    if call.service == "lambda" and "Payload" in params:
        payload = params["Payload"]
        try:
            payload = json.loads(payload.decode() if isinstance(payload, bytes) else payload)
        except (ValueError, AttributeError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("user"), str):
            return payload["user"]
    if call.invocation is not None and isinstance(call.invocation.event.get("user"), str):
        return call.invocation.event["user"]
    return None


def _lambda_results(events: list[dict]):
    """Every Lambda result (its Payload) recorded in the history, in order."""
    for e in events:
        details = e.get("taskSucceededEventDetails")
        if details and details.get("resourceType") == "lambda":
            try:
                payload = json.loads(details.get("output") or "{}").get("Payload")
            except (ValueError, AttributeError):
                continue
            if isinstance(payload, dict):
                yield payload


def find_report(events: list[dict]) -> dict | None:
    """The run's summary as the report phase returned it (the last Lambda result with a ``summary``), found
    even when the run failed after the report was built."""
    summaries = [p["summary"] for p in _lambda_results(events) if isinstance(p.get("summary"), dict)]
    return summaries[-1] if summaries else None


def find_plan(events: list[dict]) -> dict | None:
    """The plan the pre-flight Lambda returned: the first Lambda result whose Payload holds ``actions``."""
    return next((p for p in _lambda_results(events) if isinstance(p.get("actions"), list)), None)


def action_class(item: dict) -> str:
    outcome = item.get("outcome")
    if outcome == "rotate":
        return "rotated"
    if outcome == "retire":
        done = [word for key, word in (("deactivateKeyId", "deactivated"), ("deleteKeyId", "deleted")) if key in item]
        return f"retired ({' + '.join(done)})" if done else "retired"
    if outcome == "record":
        return "noted"
    return str(outcome or "acted")


# ---------------------------------------------------------------------------------------------------------
# Figures


@dataclass
class ClassFigures:
    users: int
    states_per_user: float
    history_events_per_user: float
    calls_per_user: float
    plan_calls_per_user: float  # of which made by the plan phase (reading the user)
    calls_by_operation_per_user: dict[str, float]
    lambda_invocations_per_user: float
    lambda_gb_seconds_per_user: float  # projected on AWS (see projected_seconds), invocations for the user


@dataclass
class LambdaFigures:
    function: str
    phase: str | None
    invocations: int
    emulated_seconds: float
    own_seconds: float
    calls: int
    max_in_flight: int  # the most calls one invocation had under way at once
    projected_seconds: float  # own time + calls x assumed latency / calls in flight
    memory_mb: int
    timeout_seconds: int
    gb_seconds: float


@dataclass
class RunFigures:
    label: str
    status: str
    error: str | None
    cause: str | None
    managed_users: int
    planned: bool  # the plan phase returned a plan
    acted_users: int
    deferred_users: int  # had something to do, left for a later run (a per-run cap)
    seconds_seeding: float
    seconds_deploy: float
    seconds_planning: float
    seconds_run: float
    seconds_analysis: float
    history_events: int
    states_entered: int
    run_states: int
    largest_payload: int
    largest_payload_at: str
    largest_lambda_payload: int  # a Lambda event or result, measured at the call: seen even when rejected
    largest_lambda_payload_at: str
    large_lambda_results: dict[str, dict[str, int]]  # "function phase" -> bytes per top-level field, > 64 KiB
    task_errors: dict[str, int]
    api_calls: int
    api_calls_by_operation: dict[str, int]
    api_calls_by_caller: dict[str, int]
    run_calls_by_operation: dict[str, int]  # calls for no user (ListUsers pages, plan/report invokes, the email)
    classes: dict[str, ClassFigures]
    lambdas: list[LambdaFigures]
    summary_counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # the first failed users' details, from the report
    expected_counts: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


def projected_seconds(inv: Invocation, latency: float) -> float:
    """How long the invocation would take on AWS: the handler's own time, plus each call at the assumed
    latency, as many at once as the handler had under way at once on the emulator."""
    return inv.own_seconds + len(inv.calls) * latency / max(1, inv.max_in_flight)


def figures(
    label: str,
    measured: Measured,
    user_names: list[str],
    deployment_parameters: dict[str, str],
    functions: dict[str, dict],
    latency: float,
    expected: dict[str, str] | None = None,
) -> RunFigures:
    """The run's figures. ``expected`` (user -> rotate/retire/blocked/unchanged, from the fleet as seeded) names
    the users a per-run cap deferred, which the plan only counts."""
    started = time.perf_counter()
    history = read_history(measured.events)
    prefix = deployment_parameters["SecretNamePrefix"]
    plan = find_plan(measured.events) or {}
    acted = set(history.user_states)
    user_class: dict[str, str] = {name: "untouched" for name in user_names}
    for item in plan.get("actions", []):
        user_class[item["user"]] = action_class(item) if item["user"] in acted else "deferred"
    for item in plan.get("blocked", []):
        user_class[item["user"]] = "blocked"
    planned = {item["user"] for item in plan.get("actions", [])}
    for name, outcome in (expected or {}).items():
        if outcome in ("rotate", "retire") and name not in planned and user_class.get(name) == "untouched":
            user_class[name] = "deferred" if plan else "not acted on (no plan)"

    calls_of: dict[str, list[ApiCall]] = defaultdict(list)
    run_calls: list[ApiCall] = []
    for call in measured.calls:
        user = call_user(call, prefix)
        (calls_of[user] if user is not None else run_calls).append(call)

    invocations_of: dict[str, list[Invocation]] = defaultdict(list)
    for inv in measured.invocations:
        user = inv.event.get("user")
        if isinstance(user, str):
            invocations_of[user].append(inv)

    def gb_seconds(inv: Invocation) -> float:
        config = functions.get(inv.function, {})
        billed = math.ceil(1000 * projected_seconds(inv, latency)) / 1000
        return billed * config.get("memory_mb", 128) / 1024

    members: dict[str, list[str]] = defaultdict(list)
    for name, cls in user_class.items():
        members[cls].append(name)
    classes = {}
    for cls, names in sorted(members.items()):
        n = len(names)
        ops = Counter(c.name for u in names for c in calls_of.get(u, []))
        classes[cls] = ClassFigures(
            users=n,
            states_per_user=sum(history.user_states.get(u, 0) for u in names) / n,
            history_events_per_user=sum(history.user_events.get(u, 0) for u in names) / n,
            calls_per_user=sum(len(calls_of.get(u, [])) for u in names) / n,
            plan_calls_per_user=sum(1 for u in names for c in calls_of.get(u, []) if c.caller.endswith(":plan")) / n,
            calls_by_operation_per_user={op: count / n for op, count in sorted(ops.items())},
            lambda_invocations_per_user=sum(len(invocations_of.get(u, [])) for u in names) / n,
            lambda_gb_seconds_per_user=sum(gb_seconds(i) for u in names for i in invocations_of.get(u, [])) / n,
        )

    grouped: dict[tuple[str, str | None], list[Invocation]] = defaultdict(list)
    for inv in measured.invocations:
        grouped[(inv.function, inv.phase)].append(inv)
    lambdas = []
    for (function, phase), invs in sorted(grouped.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        config = functions.get(function, {})
        lambdas.append(
            LambdaFigures(
                function=function,
                phase=phase,
                invocations=len(invs),
                emulated_seconds=sum(i.seconds for i in invs),
                own_seconds=sum(i.own_seconds for i in invs),
                calls=sum(len(i.calls) for i in invs),
                max_in_flight=max(i.max_in_flight for i in invs),
                projected_seconds=sum(projected_seconds(i, latency) for i in invs),
                memory_mb=config.get("memory_mb", 128),
                timeout_seconds=config.get("timeout", 3),
                gb_seconds=sum(gb_seconds(i) for i in invs),
            )
        )

    output = find_report(measured.events) or measured.output or {}
    summary_counts = {k: output[k] for k in ("managedUsers", "unchangedUsers", "deferredUsers", "rotated", "retired", "blocked", "attention", "failed") if isinstance(output.get(k), int)}
    planning = sum(i.seconds for i in measured.invocations if i.phase == "plan")
    sizes = [
        size
        for i in measured.invocations
        for size in ((i.request_bytes, f"event of {i.function} {i.phase or ''}".rstrip()),
                     (i.response_bytes, f"result of {i.function} {i.phase or ''}".rstrip()))
    ]
    result = RunFigures(
        label=label,
        status=measured.status,
        error=measured.error,
        cause=(measured.cause or "")[:300] or None,
        managed_users=int(plan.get("managedUsers", len(user_names))),
        planned=bool(plan),
        acted_users=len(acted),
        deferred_users=int(plan.get("deferredUsers", 0)) + sum(1 for item in plan.get("actions", []) if item["user"] not in acted),
        seconds_seeding=0.0,
        seconds_deploy=0.0,
        seconds_planning=planning,
        seconds_run=measured.seconds,
        seconds_analysis=0.0,
        history_events=history.events,
        states_entered=history.states_entered,
        run_states=history.run_states,
        largest_payload=history.largest_payload,
        largest_payload_at=history.largest_payload_at,
        largest_lambda_payload=max(sizes)[0] if sizes else 0,
        largest_lambda_payload_at=max(sizes)[1] if sizes else "",
        large_lambda_results={
            f"{i.function} {i.phase or ''}".rstrip(): dict(sorted(i.large_response_fields.items(), key=lambda kv: -kv[1]))
            for i in measured.invocations if i.large_response_fields
        },
        task_errors=history.task_errors,
        api_calls=len(measured.calls),
        api_calls_by_operation=dict(sorted(Counter(c.name for c in measured.calls).items())),
        api_calls_by_caller=dict(sorted(Counter(c.caller for c in measured.calls).items())),
        run_calls_by_operation=dict(sorted(Counter(c.name for c in run_calls).items())),
        classes=classes,
        lambdas=lambdas,
        summary_counts=summary_counts,
        failures=[
            f"{u.get('user')}: {str(u.get('detail'))[:240]}"
            for u in output.get("users", []) if isinstance(u, dict) and u.get("outcome") == "failed"
        ][:5],
    )
    result.seconds_analysis = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------------------
# Cost


def _price_per_gb_second(functions: dict[str, dict]) -> float:
    arches = {a for f in functions.values() for a in f.get("architectures", ["x86_64"])}
    return PRICE_PER_GB_SECOND_ARM64 if arches == {"arm64"} else PRICE_PER_GB_SECOND_X86


def project_cost(
    run: RunFigures, fleet: int, max_key_age_days: int, functions: dict[str, dict], plan_run: RunFigures | None = None,
    plan_fleet: int | None = None,
) -> dict:
    """Per 1,000 rotations, and per month for PROJECTED_USERS users checked daily, from one measured run.

    A rotation's lifecycle is three actions in three runs: the rotation, the previous key's deactivation after
    the install window, its deletion after the recovery window. At steady state each happens
    users / MaxKeyAgeDays times a day. Every user is read by the plan every day: its Lambda time scales with
    the managed users, linearly from ``plan_run`` (of ``plan_fleet`` users; by default this run)."""
    gb_price = _price_per_gb_second(functions)
    lifecycle = {"rotated": "rotation", "retired (deactivated)": "deactivation", "retired (deleted)": "deletion"}
    missing = [name for cls, name in lifecycle.items() if cls not in run.classes]
    steps = [run.classes[cls] for cls in lifecycle if cls in run.classes]
    transitions = sum(c.states_per_user for c in steps)
    gb_s = sum(c.lambda_gb_seconds_per_user for c in steps)
    requests = sum(c.lambda_invocations_per_user for c in steps)
    per_1000 = {
        "transitions": 1000 * transitions,
        "step_functions_usd": 1000 * transitions * PRICE_PER_TRANSITION,
        "lambda_usd": 1000 * (gb_s * gb_price + requests * PRICE_PER_REQUEST),
        "missing_steps": missing,
    }
    per_1000["total_usd"] = per_1000["step_functions_usd"] + per_1000["lambda_usd"]

    plan_run, plan_fleet = plan_run or run, plan_fleet or fleet
    scale = PROJECTED_USERS / plan_fleet
    per_run = [f for f in plan_run.lambdas if f.phase == "plan"] + [f for f in run.lambdas if f.phase == "report"]
    plan_gb_s = sum(f.gb_seconds * (scale if f.phase == "plan" else 1) for f in per_run)
    plan_requests = sum(f.invocations for f in per_run)
    rotations_per_day = PROJECTED_USERS / max_key_age_days
    day_transitions = run.run_states + rotations_per_day * transitions
    day_gb_s = plan_gb_s + rotations_per_day * gb_s
    day_requests = plan_requests + rotations_per_day * requests
    sfn_month = DAYS_PER_MONTH * day_transitions * PRICE_PER_TRANSITION
    lambda_month = DAYS_PER_MONTH * (day_gb_s * gb_price + day_requests * PRICE_PER_REQUEST)
    secrets_calls_day = (
        sum(n for op, n in run.run_calls_by_operation.items() if op.startswith("secretsmanager:"))
        + PROJECTED_USERS * _per_user_calls(run, "untouched", "secretsmanager:")
        + rotations_per_day * sum(_per_user_calls(run, cls, "secretsmanager:") - _per_user_calls(run, "untouched", "secretsmanager:") for cls in lifecycle if cls in run.classes)
    )
    plan_projection = next((f for f in plan_run.lambdas if f.phase == "plan"), None)
    return {
        "per_1000_rotations": per_1000,
        "per_month": {
            "users": PROJECTED_USERS,
            "runs": DAYS_PER_MONTH,
            "rotations_per_day": rotations_per_day,
            "transitions_per_day": day_transitions,
            "lambda_gb_seconds_per_day": day_gb_s,
            "lambda_requests_per_day": day_requests,
            "step_functions_usd": sfn_month,
            "lambda_usd": lambda_month,
            "total_usd": sfn_month + lambda_month,
            "secrets_manager_storage_usd": PROJECTED_USERS * PRICE_PER_SECRET_MONTH,
            "secrets_manager_api_usd": DAYS_PER_MONTH * secrets_calls_day * PRICE_PER_SECRETS_API_CALL,
            "plan_seconds_projected": plan_projection.projected_seconds * scale if plan_projection else None,
            "plan_timeout_seconds": plan_projection.timeout_seconds if plan_projection else None,
            "measured_on_fleet": fleet,
            "plan_measured_on_fleet": plan_fleet,
        },
    }


def _per_user_calls(run: RunFigures, cls: str, prefix: str) -> float:
    figures_ = run.classes.get(cls)
    if figures_ is None:
        return 0.0
    return sum(v for op, v in figures_.calls_by_operation_per_user.items() if op.startswith(prefix))


# ---------------------------------------------------------------------------------------------------------
# The benchmark


def function_configs(aws: Emulator) -> dict[str, dict]:
    client = boto3.client("lambda", region_name=stack.REGION)
    configs = {}
    for name in aws.deployment.functions:
        c = client.get_function_configuration(FunctionName=name)
        configs[name] = {"memory_mb": c["MemorySize"], "timeout": c["Timeout"], "architectures": c.get("Architectures", ["x86_64"])}
    return configs


def bench_fleet(size: int, overrides: dict[str, str], seed: int, latency: float, compare: bool) -> dict:
    fixture = {"start": START, "parameters": {**BASE_PARAMETERS, **overrides}, "verifiedEmails": [SENDER], "users": []}
    started = time.perf_counter()
    with secrets_found_by_name(), Emulator(fixture) as aws:
        deploy_seconds = time.perf_counter() - started
        params = aws.deployment.parameters
        policy = decisions.Policy.from_days(
            int(params["MaxKeyAgeDays"]), int(params["InstallWindowDays"]), int(params["RecoveryWindowDays"])
        )
        specs = make_fleet(size, policy, seed)
        started = time.perf_counter()
        seed_fleet(specs, aws.clock.now, params, policy)
        seeding = time.perf_counter() - started
        functions = function_configs(aws)

        measured = run_measured(aws.deployment.state_machine_arn, "bench-scheduled", aws.scheduled_input())
        expected = {s.name: s.expected(policy) for s in specs}
        run = figures(f"{size} users", measured, [s.name for s in specs], params, functions, latency, expected)
        run.seconds_seeding, run.seconds_deploy = seeding, deploy_seconds
        run.expected_counts = dict(sorted(Counter(expected.values()).items()))
        run.parameters = {k: params[k] for k in ("MaxKeyAgeDays", "InstallWindowDays", "RecoveryWindowDays", "MaxUsersPerRun", "ParallelUsers") if k in params}
        result = {
            "fleet": size,
            "run": run,
            "cost": project_cost(run, size, int(params["MaxKeyAgeDays"]), functions),
            "functions": functions,
        }
        if "MaxUsersPerRun" in params:
            cap = int(params["MaxUsersPerRun"])
            rotated = run.classes.get("rotated")
            result["cap"] = {
                "max_users_per_run": cap,
                "acted_users": run.acted_users,
                "actionable_users": run.acted_users + run.deferred_users,
                "runs_for_all_due_first_install_of_10000": math.ceil(PROJECTED_USERS / cap),
                "history_events_at_cap_all_rotating": (
                    run.history_events - sum(c.history_events_per_user * c.users for c in run.classes.values())
                    + cap * rotated.history_events_per_user
                ) if rotated else None,
            }
        if compare:
            result["comparison"] = compare_designs(aws, policy)
        return result


def compare_designs(aws: Emulator, policy: decisions.Policy) -> dict:
    """Our state machine and the original blog design, each rotating one due user with its key in the secret."""
    params = aws.deployment.parameters
    due = [UserSpec(name, policy.max_key_age + timedelta(days=5), True) for name in ("bench-ours", "bench-original")]
    seed_fleet(due, aws.clock.now, params, policy)
    sfn = boto3.client("stepfunctions", region_name=stack.REGION)
    role = sfn.describe_state_machine(stateMachineArn=aws.deployment.state_machine_arn)["roleArn"]
    original_arn = sfn.create_state_machine(
        name="original-blog-design", definition=ORIGINAL_DESIGN.read_text(), roleArn=role
    )["stateMachineArn"]

    ours = run_measured(
        aws.deployment.state_machine_arn, "bench-one-user", {"time": decisions.format_time(aws.clock.now), "users": ["bench-ours"]}
    )
    original = run_measured(
        original_arn,
        "bench-original-one-user",
        {"UserName": "bench-original", "SecretName": params["SecretNamePrefix"] + "bench-original", "Sender": SENDER, "Recipient": RECIPIENT},
    )
    rows = {}
    for label, user, m in (
        ("ours (on-demand run for one due user)", "bench-ours", ours),
        ("original blog design", "bench-original", original),
    ):
        h = read_history(m.events)
        rows[label] = {
            "keys_after": [k.status for k in sorted(account.keys_of(user), key=lambda k: k.created)],
            "status": m.status,
            "states_entered": h.states_entered,
            "history_events": h.events,
            "api_calls": len(m.calls),
            "api_calls_by_operation": dict(sorted(Counter(c.name for c in m.calls).items())),
            "lambda_invocations": len(m.invocations),
            "seconds": m.seconds,
        }
    return rows


# ---------------------------------------------------------------------------------------------------------
# Output


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def print_fleet(result: dict, latency: float) -> None:
    run: RunFigures = result["run"]
    print(f"\n=== Fleet of {result['fleet']:,} managed users: one scheduled run ===")
    print(f"  parameters: {', '.join(f'{k}={v}' for k, v in run.parameters.items())}")
    print(f"  status {run.status}{': ' + run.error if run.error else ''}; summary {run.summary_counts}")
    if run.status != "SUCCEEDED":
        print(f"  cause: {run.cause}")
    for failure in run.failures:
        print(f"  failed user {failure}")
    print(f"  fleet as seeded: {run.expected_counts}")
    print(
        f"  wall time: seeding {run.seconds_seeding:.1f} s (not in the run), deploy {run.seconds_deploy:.1f} s; "
        f"run {run.seconds_run:.1f} s, of which planning {run.seconds_planning:.1f} s; "
        f"history analysis {run.seconds_analysis:.1f} s"
    )
    print(f"  users acted on: {run.acted_users:,}; left for later runs: {run.deferred_users:,}")
    print(
        f"  history: {run.history_events:,} events (limit {HISTORY_EVENT_LIMIT:,}: "
        f"{100 * run.history_events / HISTORY_EVENT_LIMIT:.0f}%{' EXCEEDED' if run.history_events > HISTORY_EVENT_LIMIT else ''}); "
        f"{run.states_entered:,} states entered, {run.run_states} of them once per run"
    )
    print(
        f"  largest payload: {run.largest_payload:,} bytes = {_kib(run.largest_payload)} (limit 256 KiB: "
        f"{100 * run.largest_payload / PAYLOAD_LIMIT_BYTES:.0f}%{' EXCEEDED' if run.largest_payload > PAYLOAD_LIMIT_BYTES else ''}), "
        f"{run.largest_payload_at}"
    )
    print(
        f"  largest Lambda payload: {run.largest_lambda_payload:,} bytes = {_kib(run.largest_lambda_payload)} "
        f"({100 * run.largest_lambda_payload / PAYLOAD_LIMIT_BYTES:.0f}% of 256 KiB"
        f"{', OVER: Step Functions rejects it' if run.largest_lambda_payload > PAYLOAD_LIMIT_BYTES else ''}), "
        f"{run.largest_lambda_payload_at}"
    )
    for where, fields in run.large_lambda_results.items():
        print(f"    {where} result by field: {', '.join(f'{k} {v:,}' for k, v in list(fields.items())[:6])} bytes")
    if run.task_errors:
        print(f"  task errors (each failed attempt, caught or not): {run.task_errors}")
    print(f"  AWS API calls: {run.api_calls:,} in total; by caller: {run.api_calls_by_caller}")
    print(f"    by operation: {', '.join(f'{op} {n:,}' for op, n in run.api_calls_by_operation.items())}")
    print(f"    for no user in particular: {', '.join(f'{op} {n:,}' for op, n in run.run_calls_by_operation.items())}")
    print("  per user, by what the run did:")
    print(f"    {'class':<34}{'users':>7}{'states':>8}{'events':>8}{'calls':>7}{'(plan)':>8}  calls by operation")
    for cls, c in run.classes.items():
        ops = ", ".join(f"{op} {v:.2g}" for op, v in c.calls_by_operation_per_user.items())
        print(
            f"    {cls:<34}{c.users:>7,}{c.states_per_user:>8.1f}{c.history_events_per_user:>8.1f}"
            f"{c.calls_per_user:>7.1f}{c.plan_calls_per_user:>8.1f}  {ops}"
        )
    print(
        f"  Lambda (projected on AWS = own time + calls x {latency * 1000:.0f} ms assumed API latency "
        "/ calls under way at once):"
    )
    for f in run.lambdas:
        over = " OVER ITS TIMEOUT" if f.projected_seconds / max(f.invocations, 1) > f.timeout_seconds else ""
        print(
            f"    {f.function} phase={f.phase}: {f.invocations:,} invocation(s), emulated {f.emulated_seconds:.2f} s, "
            f"own {f.own_seconds:.2f} s, {f.calls:,} calls ({f.max_in_flight} at once), projected {f.projected_seconds:.1f} s "
            f"(timeout {f.timeout_seconds} s per invocation){over}, {f.memory_mb} MB, {f.gb_seconds:.2f} GB-s"
        )
    cap = result.get("cap")
    if cap and not run.planned:
        print(
            f"  MaxUsersPerRun={cap['max_users_per_run']}: the run acted on no user, as no plan came back; a first "
            f"install of 10,000 users all due needs {cap['runs_for_all_due_first_install_of_10000']} runs at this cap"
        )
    elif cap:
        print(
            f"  MaxUsersPerRun={cap['max_users_per_run']}: this run acted on {cap['acted_users']:,} of "
            f"{cap['actionable_users']:,} users with something to do; a first install of 10,000 users all due "
            f"needs {cap['runs_for_all_due_first_install_of_10000']} runs (days on the daily schedule)"
            + (f"; a run at the cap with every user rotating: ~{cap['history_events_at_cap_all_rotating']:,.0f} history events" if cap["history_events_at_cap_all_rotating"] else "")
        )


def print_cost(result: dict) -> None:
    cost = result["cost"]
    p, m = cost["per_1000_rotations"], cost["per_month"]
    plan = m
    print(
        f"\n=== Projected cost (per-user steps from the {m['measured_on_fleet']:,}-user run, the plan phase from the "
        f"{m['plan_measured_on_fleet']:,}-user run) ==="
    )
    print(
        "  Assumed list prices, us-east-1: Step Functions Standard $0.025 per 1,000 state transitions; Lambda arm64 "
        "$0.0000133334 per GB-second and $0.20 per 1M requests; Secrets Manager $0.40 per secret-month and $0.05 "
        "per 10,000 API calls. A transition is counted as a state entered; Lambda time is the handler's own time "
        "plus its calls at the assumed latency, at the template's MemorySize."
    )
    missing = f" (not measured: {', '.join(p['missing_steps'])})" if p["missing_steps"] else ""
    print(
        f"  per 1,000 rotations (each with its later deactivation and deletion){missing}: "
        f"{p['transitions']:,.0f} transitions = ${p['step_functions_usd']:.2f} Step Functions + "
        f"${p['lambda_usd']:.4f} Lambda = ${p['total_usd']:.2f}"
    )
    print(
        f"  per month, {m['users']:,} users checked daily ({m['runs']} runs, {m['rotations_per_day']:.0f} rotations, "
        f"deactivations and deletions a day): {m['transitions_per_day']:,.0f} transitions a day = "
        f"${m['step_functions_usd']:.2f} Step Functions + ${m['lambda_usd']:.2f} Lambda "
        f"({m['lambda_gb_seconds_per_day']:,.0f} GB-s, {m['lambda_requests_per_day']:,.0f} requests a day) "
        f"= ${m['total_usd']:.2f}"
    )
    print(
        f"  for scale, not the workflow's: the {m['users']:,} secrets themselves cost ${m['secrets_manager_storage_usd']:,.0f} "
        f"a month, their API calls ${m['secrets_manager_api_usd']:.2f}"
    )
    if plan["plan_seconds_projected"] is not None:
        verdict = "over" if plan["plan_seconds_projected"] > plan["plan_timeout_seconds"] else "within"
        print(
            f"  the plan phase for {plan['users']:,} users: "
            f"~{plan['plan_seconds_projected']:,.0f} s projected on AWS, {verdict} the function's "
            f"{plan['plan_timeout_seconds']} s timeout"
        )


def print_comparison(rows: dict, lifecycle_transitions: float | None) -> None:
    print("\n=== One due user: ours vs the original blog design (same emulator, same role) ===")
    for label, r in rows.items():
        print(
            f"  {label}: {r['status']}, {r['states_entered']} states entered, {r['history_events']} history events, "
            f"{r['api_calls']} AWS API calls ({r['lambda_invocations']} Lambda invocation(s)), {r['seconds'] * 1000:.0f} ms; "
            f"the user's keys after, oldest first: {', '.join(r['keys_after']) or 'none'}"
        )
        print(f"      {', '.join(f'{op} {n}' for op, n in r['api_calls_by_operation'].items())}")
    original = rows.get("original blog design")
    if original and lifecycle_transitions:
        print(
            f"  per 1,000 rotations: the original design {1000 * original['states_entered']:,} transitions "
            f"(${1000 * original['states_entered'] * PRICE_PER_TRANSITION:.2f}); ours {1000 * lifecycle_transitions:,.0f} "
            f"in scheduled runs with the later deactivation and deletion "
            f"(${1000 * lifecycle_transitions * PRICE_PER_TRANSITION:.2f}). The original has no age check: run daily "
            f"for {PROJECTED_USERS:,} users it would rotate every user every day, "
            f"{DAYS_PER_MONTH * PROJECTED_USERS * original['states_entered']:,} transitions a month "
            f"(${DAYS_PER_MONTH * PROJECTED_USERS * original['states_entered'] * PRICE_PER_TRANSITION:.2f}), "
            "deleting each user's working key before storing the new one."
        )


def _jsonable(value):
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", default=",".join(map(str, DEFAULT_FLEETS)), help="fleet sizes, e.g. 100,1000")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter override")
    parser.add_argument("--seed", type=int, default=1, help="the fleet's random seed")
    parser.add_argument(
        "--api-latency-ms", type=float, default=DEFAULT_API_LATENCY_MS,
        help="assumed time an AWS API call takes from Lambda, for projected durations and cost (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the report")
    args = parser.parse_args(argv)
    try:
        fleets = [int(f.replace("_", "")) for f in args.fleets.split(",") if f.strip()]
        overrides = dict(p.split("=", 1) for p in args.param)
    except ValueError as error:
        parser.error(str(error))
    latency = args.api_latency_ms / 1000

    results = []
    for n, size in enumerate(fleets):
        try:
            result = bench_fleet(size, overrides, args.seed, latency, compare=n == 0)
        except stack.TemplateError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        results.append(result)
        if not args.json:
            print_fleet(result, latency)
            sys.stdout.flush()
    if args.json:
        print(json.dumps(_jsonable(results), indent=2))
        return 0
    # The cost is projected from the largest fleet whose run succeeded and measured every lifecycle step.
    complete = [r for r in results if r["run"].status == "SUCCEEDED" and not r["cost"]["per_1000_rotations"]["missing_steps"]]
    basis = complete[-1] if complete else results[-1]
    largest = results[-1]
    basis = {**basis, "cost": project_cost(
        basis["run"], basis["fleet"], int(basis["run"].parameters["MaxKeyAgeDays"]), basis["functions"],
        plan_run=largest["run"], plan_fleet=largest["fleet"],
    )}
    print_cost(basis)
    if "comparison" in results[0]:
        print_comparison(results[0]["comparison"], basis["cost"]["per_1000_rotations"]["transitions"] / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
