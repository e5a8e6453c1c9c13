"""Fault-injection matrix: every AWS call the workflow and its Lambdas make, each failing on the emulator.

For each row of MATRIX (an operation, and an account in which the run really makes that call):
 (a) one transient failure: the run succeeds through retry (the Task's Retry, or boto3's own retries inside
     a Lambda), ends in exactly the state a run without the fault ends in, and every backoff it asked for
     is bounded (full jitter under the exponential curve and the cap);
 (b) a failure that lasts the whole run: the run ends FAILED after its retries are spent, says what failed
     (cause and email, unless the email or the report is what fails), and the invariants hold;
 (c) then the fault clears and the same input runs again: it converges on the end state of a run that never
     met the fault.
(b) for the middle one of three users, and the two calls that happen only after another fault, are in
tests/test_fault_matrix_users_and_cleanup.py, which imports the table and the helpers from here.

Every fault is armed only while an execution runs (``runs_only``), so the test's own reads of the account
never consume or trip it, and every test checks the fault fired as often as it should before it trusts the
outcome. The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans for leaked
secrets after every run. The hand-written fault tests there (a failed store, throttled create, one failing
user on create, lost responses, a key neither stored nor deleted) remain; this is the systematic form.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import boto3
import botocore.session
import decisions
import pytest
from test_rotation_workflow import MANAGED, START, account_with, assert_sound, emulate, key, outcomes  # noqa: F401 (fixture)

from emulator import account
from emulator.faithful_moto import SERVICE_ERROR_NAMES
from emulator.faults import about_user, failing, lambda_function, sdk_backoff_recorded
from emulator.runner import Emulator

ROOT = Path(__file__).resolve().parent.parent
ASL = json.loads((ROOT / "statemachine" / "rotation.asl.json").read_text())


# --- the table -----------------------------------------------------------------------------------------------

OWNER = "keys-owner@example.com"
# Accounts, as one user's keys (and tags): each makes the run call a different set of operations.
SETUPS = {
    "due": [key(95, in_secret=True)],  # rotation: create a key, store it (PutSecretValue)
    "due, no secret": [key(120)],  # first rotation: create a key, CreateSecret
    "retiring": [key(7, in_secret=True), key(97)],  # install window over: prove the stored key, deactivate the older, tag it
    "deleting": [key(14, in_secret=True), key(120, "Inactive", inactive_days_ago=7)],  # recovery over: check, delete, untag
    "ungranted": [key(10, in_secret=True)],  # with GRANTING: the plan reads the secret's policy, the run grants
    "due, owned": ([key(95, in_secret=True)], {"KeyOwnerEmail": OWNER}),  # the rotation is also emailed to its owner
}
GRANTING = (("ConsumerPrincipalArn", "arn:aws:iam::123456789012:role/consumer"),)  # template parameters


@dataclass(frozen=True)
class Also:
    """A second fault without which the row's operation never runs (reconcile runs only after a failed store)."""

    service: str
    method: str
    code: str
    after: bool  # True: the call takes effect and only its response is lost
    state: str  # the Task whose Retry sees it


STORE_LOSES_RESPONSE = Also("secretsmanager", "put_secret_value", "InternalServiceError", True, "Store new key in secret")


@dataclass(frozen=True)
class Row:
    id: str
    service: str
    method: str  # the moto backend method the fault wraps
    transient: str  # error code of the one-off failure
    persistent: str  # error code of the failure that lasts the run
    setup: str  # key of SETUPS
    stage: str  # what a lasting failure ends: "plan" (the run, before any user), "read" (the user, planned from
    #             what could not be read: nothing changed), "user" (the user, mid-way), "email", "report" or
    #             "owner email"
    state: str | None  # the Task whose Retry retries it; None: boto3's retries inside the Lambda
    run: str = "scheduled"  # or "on-demand": the input names the users
    when: object = None  # which calls of the operation fail, e.g. one Lambda phase
    also: Also | None = None
    parameters: tuple = ()  # template parameter overrides
    seen_as: str | None = None  # the error the Task's Retry sees, when the Lambda translates the AWS error
    per_user: bool = True  # False: the call serves a whole batch of users at once


function = lambda_function
to = lambda address: lambda *args, **kwargs: address in json.dumps([args, kwargs], default=str)  # noqa: E731

# fmt: off
MATRIX = [
    #   id                       service           moto backend method    transient                    persistent                  setup             stage     Task that retries it (None: boto3 in the Lambda)
    Row("plan:AccountDetails",   "iam",            "get_account_authorization_details", "Throttling", "ServiceFailure",        "due",            "plan",   None),
    Row("plan:ListAccessKeys",   "iam",            "list_access_keys",    "Throttling",                "ServiceFailure",           "due",            "read",   None),
    Row("plan:GetUser",          "iam",            "get_user",            "ServiceFailure",            "ServiceFailure",           "due",            "plan",   None, run="on-demand"),
    Row("plan:ListSecrets",      "secretsmanager", "list_secrets",        "InternalServiceError",      "InternalServiceError",     "due",            "plan",   None),
    Row("UpdateAccessKey",       "iam",            "update_access_key",   "Throttling",                "ServiceFailure",           "retiring",       "user",   "Deactivate old key"),
    Row("TagUser",               "iam",            "tag_user",            "ServiceFailure",            "Throttling",               "retiring",       "user",   "Record when keys became inactive"),
    Row("DeleteAccessKey",       "iam",            "delete_access_key",   "Throttling",                "ServiceFailure",           "deleting",       "user",   "Delete retired key"),
    Row("UntagUser",             "iam",            "untag_user",          "ServiceFailure",            "ServiceFailure",           "deleting",       "user",   "Forget obsolete tags"),
    Row("CreateAccessKey",       "iam",            "create_access_key",   "ServiceFailure",            "Throttling",               "due",            "user",   "Create new access key"),
    Row("PutSecretValue",        "secretsmanager", "put_secret_value",    "InternalServiceError",      "InternalServiceError",     "due",            "user",   "Store new key in secret"),
    Row("CreateSecret",          "secretsmanager", "create_secret",       "InternalServiceError",      "InternalServiceError",     "due, no secret", "user",   "Create secret with new key"),
    Row("SendEmail",             "ses",            "send_email",          "Throttling",                "Throttling",               "due",            "email",  "Email the report"),
    Row("SendEmail:owner",       "ses",            "send_email",          "Throttling",                "Throttling",               "due, owned",     "owner email", "Email the owner", when=to(OWNER)),
    Row("Invoke:plan-run",       "lambda",         "invoke",              "ServiceException",          "ServiceException",         "due",            "plan",   "Plan the run", when=function("PlanRun")),
    Row("Invoke:plan-batch",     "lambda",         "invoke",              "TooManyRequestsException",  "ServiceException",         "due",            "read",   "Plan the batch's users", when=function("PlanBatch"), per_user=False),
    Row("Invoke:queue",          "lambda",         "invoke",              "ServiceException",          "TooManyRequestsException", "due",            "plan",   "Queue the actions", when=function("QueueActions")),
    Row("Invoke:key-status",     "lambda",         "invoke",              "TooManyRequestsException",  "ServiceException",         "deleting",       "user",   "Check the key is still inactive", when=function("KeyStatus")),
    Row("Invoke:reconcile",      "lambda",         "invoke",              "ServiceException",          "TooManyRequestsException", "due",            "user",   "Look for unstored keys", when=function("Reconcile"), also=STORE_LOSES_RESPONSE),
    Row("Invoke:report",         "lambda",         "invoke",              "TooManyRequestsException",  "ServiceException",         "due",            "report", "Report the run", when=function("ReportFunction")),
    # Single flight, the key check before a deactivation, and the consumer's read access:
    Row("plan:ListExecutions",   "stepfunctions",  "list_executions",     "ThrottlingException",       "ThrottlingException",      "due",            "plan",   None),
    Row("Invoke:key-check",      "lambda",         "invoke",              "ServiceException",          "ServiceException",         "retiring",       "user",   "Prove the stored key works", when=lambda_function("KeyCheck")),
    Row("check:GetSecretValue",  "secretsmanager", "get_secret_value",    "InternalServiceError",      "InternalServiceError",     "retiring",       "user",   None),
    Row("check:GetCallerIdentity", "sts",          "get_caller_identity", "InvalidClientTokenId",      "InvalidClientTokenId",     "retiring",       "user",   "Prove the stored key works", seen_as="KeyNotYetAccepted"),
    Row("plan:GetResourcePolicy", "secretsmanager", "get_resource_policy", "InternalServiceError",     "InternalServiceError",     "ungranted",      "read",   None, parameters=GRANTING),
    Row("PutResourcePolicy",     "secretsmanager", "put_resource_policy", "InternalServiceError",      "InternalServiceError",     "due",            "user",   "Grant the consumer read access", parameters=GRANTING),
]
# fmt: on


# --- the ASL's Retry policies, and AWS's error names ---------------------------------------------------------


def _states(definition: dict):
    for name, state in definition.get("States", {}).items():
        yield name, state
        for nested in [state.get("ItemProcessor") or state.get("Iterator") or {}, *state.get("Branches", [])]:
            yield from _states(nested)


def retrier(state_name: str, error: str) -> dict:
    """The Retry entry of the Task ``state_name`` that retries ``error``."""
    (state,) = [s for n, s in _states(ASL) if n == state_name]
    for entry in state.get("Retry", []):
        if {error, "States.ALL", "States.TaskFailed"} & set(entry["ErrorEquals"]):
            return entry
    raise AssertionError(f"{state_name} has no Retry for {error}")


def backoff_caps(state_name: str, error: str, retries: int) -> list[float]:
    """The most each of ``retries`` consecutive retries may wait: IntervalSeconds * BackoffRate^n, held at
    MaxDelaySeconds; with full jitter each wait is drawn from [0, that]."""
    entry = retrier(state_name, error)
    assert entry.get("JitterStrategy") == "FULL", f"{state_name}: Retry for {error} without full jitter"
    assert entry.get("MaxDelaySeconds"), f"{state_name}: Retry for {error} without a cap (MaxDelaySeconds)"
    assert retries <= entry.get("MaxAttempts", 3)
    interval, rate, cap = entry.get("IntervalSeconds", 1), entry.get("BackoffRate", 2.0), entry["MaxDelaySeconds"]
    return [min(interval * rate**n, cap) for n in range(retries)]


def attempts(state_name: str, error: str) -> int:
    return retrier(state_name, error).get("MaxAttempts", 3) + 1


def sfn_error(service: str, code: str) -> str:
    """The error name a Task sees: Lambda.<code>, or <Service>.<ErrorShape> for a code in the service's model
    and <Service>.<Service>Exception for one outside it (as AWS, and faithful_moto, name them)."""
    if service == "lambda":
        return f"Lambda.{code}"
    model = botocore.session.get_session().get_service_model(service)
    shape = next((s for s in model.error_shapes if s.error_code == code), None)
    prefix = SERVICE_ERROR_NAMES[service]
    name = f"{prefix}.{shape.name if shape else prefix}"
    return name if name.endswith("Exception") else name + "Exception"


def seen(row: Row, code: str) -> str:
    return row.seen_as or sfn_error(row.service, code)


def assert_bounded(delays: list[float], caps: list[float]) -> None:
    assert len(delays) == len(caps), f"{len(delays)} retries, expected {len(caps)}: {delays}"
    for n, (delay, cap) in enumerate(zip(delays, caps)):
        assert 0 <= delay <= cap, f"retry {n + 1} waited {delay:.2f} s, more than {cap} s"


def assert_sdk_backoff(delays: list[float]) -> None:
    """boto3's retries, legacy or standard mode: a random part of 2^n seconds, at most 20 s."""
    assert delays, "boto3 did not retry"
    assert_bounded(delays, [min(2.0**n, 20.0) for n in range(len(delays))])


def task_backoff_caps(row: Row, error: str, failures: int, also) -> list[float]:
    """Caps of every Task retry the run asked for: the companion fault's first (it happens first), then the row's."""
    caps = backoff_caps(row.state, error, failures - 1)
    if also:
        caps = backoff_caps(row.also.state, sfn_error(row.also.service, row.also.code), also.failures - 1) + caps
    return caps


# --- accounts, faulty runs and their end states --------------------------------------------------------------


def fixture(row: Row, users=("app",)) -> dict:
    keys, tags = SETUPS[row.setup] if isinstance(SETUPS[row.setup], tuple) else (SETUPS[row.setup], {})
    return account_with(*[(u, keys, {**MANAGED, **tags}, "/") for u in users])


def start(aws: Emulator, row: Row, users=("app",)):
    if row.run == "on-demand":
        return aws.start({"time": START, "users": list(users)})
    return aws.start({"time": START})  # what the schedule passes


@dataclass
class Faulty:
    run: object
    fault: object  # the row's Fault
    also: object  # the companion's Fault, or None
    sdk_delays: list  # boto3's backoff inside the Lambdas, both retry modes


def run_with_fault(aws: Emulator, row: Row, code: str, times: int | None = None, user: str | None = None, users=("app",)):
    """One run with the row's fault (and the fault it needs first) armed while the execution runs; ``user``
    limits both to the calls about that user."""

    def only(when):
        if user is None:
            return when
        named = about_user(user)
        return named if when is None else (lambda *a, **k: named(*a, **k) and when(*a, **k))

    standard_before = len(aws.recorder.sdk_retry_delays)
    with contextlib.ExitStack() as faults:
        legacy = faults.enter_context(sdk_backoff_recorded())
        also = None
        if row.also:
            a = row.also
            also = faults.enter_context(failing(a.service, a.method, a.code, after=a.after, when=only(None), runs_only=True))
        fault = faults.enter_context(failing(row.service, row.method, code, times=times, when=only(row.when), runs_only=True))
        run = start(aws, row, users)
    return Faulty(run, fault, also, aws.recorder.sdk_retry_delays[standard_before:] + legacy)


def snapshot(aws: Emulator) -> dict:
    """Per user: the keys (seeding time or order of creation by the runs, status, inactive-since tag), the key each
    secret stage holds, any inactive-since tag of a key that is gone, and the secret's resource policy. Free of
    random key ids and of how long each run took, so two accounts seeded alike compare equal."""
    state = {}
    tag_prefix = decisions.inactive_since_tag("")
    seeded = decisions.parse_time(aws.fixture["start"])
    for user in aws.users:
        keys = sorted(account.keys_of(user), key=lambda k: k.created)
        tags = account.tags_of(user)
        new = iter(range(1, len(keys) + 1))
        born = {
            k.id: k.created.astimezone(timezone.utc).isoformat() if k.created < seeded else f"new key {next(new)}"
            for k in keys
        }
        state[user] = {
            # The day each key's recovery window started: a run after a failed one starts (and records) later.
            "keys": sorted((born[k.id], k.status, tags.get(decisions.inactive_since_tag(k.id), "")[:10]) for k in keys),
            "secret": {
                stage: born.get(v.key_id, "a deleted key" if v.key_id else "a foreign value")
                for v in account.secret_versions(aws.secret_prefix + user)
                for stage in v.stages
            },
            "stray tags": sorted(t for t in tags if t.startswith(tag_prefix) and t[len(tag_prefix) :] not in born),
            "secret policy": _resource_policy(aws.secret_prefix + user),
        }
    return state


def _resource_policy(secret_name: str) -> str | None:
    sm = boto3.client("secretsmanager")
    try:
        return sm.get_resource_policy(SecretId=secret_name).get("ResourcePolicy")
    except sm.exceptions.ResourceNotFoundException:
        return None


@dataclass(frozen=True)
class Reference:
    before: dict
    after: dict
    outcomes: dict
    emails: int


_references: dict = {}


def reference(row: Row) -> Reference:
    """The same account and input without any fault, run once per setup. Called before the test starts its own
    emulator: two emulated accounts cannot be live at once."""
    cache_key = (row.setup, row.run, row.parameters)
    if cache_key not in _references:
        with Emulator(fixture(row), dict(row.parameters)) as aws:
            before = snapshot(aws)
            run = start(aws, row)
            assert (run.status, run.cause) == ("SUCCEEDED", None)
            assert_sound(aws, run)
            _references[cache_key] = Reference(before, snapshot(aws), outcomes(run), len(run.emails))
    return _references[cache_key]


def rows(*stages):
    return [pytest.param(r, id=r.id) for r in MATRIX if not stages or r.stage in stages]


# --- (a) one transient failure -------------------------------------------------------------------------------


@pytest.mark.parametrize("row", rows())
def test_one_transient_failure_is_retried_and_the_run_ends_as_without_it(emulate, row):
    expected = reference(row)
    aws = emulate(fixture(row), **dict(row.parameters))

    faulty = run_with_fault(aws, row, row.transient, times=1)
    run = faulty.run

    assert faulty.fault.failures == 1, f"{faulty.fault.operation}: the run never made this call"
    assert (run.status, run.cause) == ("SUCCEEDED", None)
    assert snapshot(aws) == expected.after
    assert outcomes(run) == expected.outcomes and len(run.emails) == expected.emails
    if row.state is None:  # boto3 retried inside the Lambda; the state machine saw nothing
        assert run.retry_delays == []
        assert len(faulty.sdk_delays) == 1
        assert_sdk_backoff(faulty.sdk_delays)
    else:
        assert_bounded(run.retry_delays, task_backoff_caps(row, seen(row, row.transient), 2, faulty.also))
        assert faulty.sdk_delays == []


# --- (b) a failure that lasts the run, then (c) the run after it clears --------------------------------------


@pytest.mark.parametrize("row", rows())
def test_a_lasting_failure_fails_the_run_safely_and_the_next_run_converges(emulate, row):
    expected = reference(row)
    aws = emulate(fixture(row), **dict(row.parameters))

    faulty = run_with_fault(aws, row, row.persistent)
    run, fault = faulty.run, faulty.fault

    # (b) Every attempt failed and the retries were spent, with bounded backoff ...
    assert fault.failures >= 1, f"{fault.operation}: the run never made this call"
    if row.state is None:
        assert fault.failures == len(faulty.sdk_delays) + 1  # one per attempt boto3 made
        assert_sdk_backoff(faulty.sdk_delays)
    else:
        error = seen(row, row.persistent)
        assert fault.failures == attempts(row.state, error)
        assert_bounded(run.retry_delays, task_backoff_caps(row, error, fault.failures, faulty.also))
    # ... the run failed and says why ...
    assert run.status == "FAILED"
    if row.also:  # the store that failed, and that the cleanup could not check it, naming the key and why
        assert sfn_error(row.also.service, row.also.code) in run.cause
        (new_key,) = set(run.keys_after["app"]) - set(run.keys_before["app"])
        assert f"could not check whether the secret holds the new key {new_key} ({seen(row, row.persistent)})" in run.cause
    elif row.stage != "owner email":  # the AWS error code, or the name the Task saw (an owner email's: below)
        assert row.persistent in run.cause or seen(row, row.persistent) in run.cause
    if row.stage == "plan":
        assert run.error == "RotationFailed"
        assert snapshot(aws) == expected.before  # nothing was changed
        (email,) = run.emails
        assert email.subject.endswith(": run failed") and "before any user was processed" in email.body
    elif row.stage in ("read", "user"):
        assert run.error == "RotationFailed"
        assert outcomes(run) == {"app": "failed"}
        assert run.cause.startswith("1 user(s) failed: app (")
        (email,) = run.emails
        assert "app: FAILED" in email.body
        if row.stage == "read":
            assert snapshot(aws) == expected.before
    elif row.stage == "owner email":  # every change was made and reported; the owner was not told
        assert run.error == "NotificationFailed"
        assert [e.destinations for e in run.emails] == [["team@example.com", "owner@example.com"]]
        assert "1 owner email(s) were not sent" in run.cause
        (unsent,) = [c for c in run.children if c.status == "FAILED"]
        assert unsent.input["to"] == [OWNER] and unsent.error == seen(row, row.persistent)
        assert snapshot(aws) == expected.after
    else:  # every user's changes were made; only the email, or the report and so the email, is missing
        assert run.error == {"email": "NotificationFailed", "report": "ReportFailed"}[row.stage]
        assert run.emails == []
        assert snapshot(aws) == expected.after
    # ... and (the emulate fixture checks) the invariants hold.

    # (c) The fault has cleared: the same input again converges on the end state of a run without the fault.
    again = start(aws, row)
    assert (again.status, again.cause) == ("SUCCEEDED", None)
    assert snapshot(aws) == expected.after
