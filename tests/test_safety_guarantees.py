"""The safety guarantees added with the key check, single flight, the per-run cap and consumer access, each on the
real template, state machine and Lambdas in the emulator:

1. an older key is deactivated only after the key its secret holds has authenticated as the user (the key check),
   retried while IAM propagates a new key, and never when the stored key does not work;
2. a run that starts while another is still running changes nothing (single flight), really overlapping;
3. the same input twice rotates once, and a retried PutSecretValue never adds a second version;
4. a run acts on at most MaxUsersPerRun users, the oldest keys first, and ParallelUsers caps the Map;
5. ConsumerPrincipalArn gets exactly read access to each rotated secret, and new secrets use the stack's KMS key;
6. the plan of a large account stays far below Step Functions' 256 KiB payload limit.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans every run's output,
cause, emails and Lambda payloads for secret access keys after each test.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from unittest import mock

import boto3
import decisions
import pytest
from test_rotation_workflow import (  # noqa: F401 (emulate is a fixture)
    START,
    account_with,
    after_planning,
    assert_sound,
    emulate,
    key,
    keys,
    outcomes,
    staged,
)

from emulator import account
from emulator.faults import failing, in_state
from emulator.stack import ACCOUNT_ID

STACK_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321"
CONSUMER = "arn:aws:iam::123456789012:role/app"
KEY_CHECK = "Prove the stored key works"
FORCED = {"time": START, "users": ["app"], "force": True}  # an on-demand run that rotates app now


# --- helpers -------------------------------------------------------------------------------------------------


def _iam_backend():
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["global"]


def secret_access_key(user, key_id):
    """Test harness only: the secret half of a key IAM issued, to plant it in a secret."""
    return next(k.secret_access_key for k in _iam_backend().get_user(user).access_keys if k.access_key_id == key_id)


def current_and_older(user):
    """(the key its secret holds, the other key) of a user seeded with key(7, in_secret=True) and key(97)."""
    (held,) = [v.key_id for v in account.secret_versions("iam-key-rotation/" + user) if "AWSCURRENT" in v.stages]
    (older,) = set(keys(user)) - {held}
    return held, older


def flat(text):
    """Text with its line wrapping undone (email bodies wrap at 76 characters)."""
    return " ".join(text.split())


def invocations_of(run, function_part):
    """The parameters of each invocation of the function whose name holds ``function_part``, from the history."""
    return [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in run.all_events()
        if e.get("taskScheduledEventDetails", {}).get("resourceType") == "lambda"
        and function_part in e["taskScheduledEventDetails"]["parameters"]
    ]


def key_check_results(run):
    """The key check Lambda's results (its Payload) as the history records them."""
    found = []
    for e in run.all_events():
        d = e.get("taskSucceededEventDetails")
        if d and d.get("resourceType") == "lambda":
            payload = json.loads(d["output"])["Payload"]
            if "authenticatesAs" in payload:
                found.append(payload)
    return found


def failed_task_errors(run):
    return [e["taskFailedEventDetails"].get("error") for e in run.all_events() if "taskFailedEventDetails" in e]


def event_index(run, predicate):
    return next(i for i, e in enumerate(run.all_events()) if predicate(e))


def version_count(secret_name):
    """Every version of the secret, staged or not."""
    sm = boto3.client("secretsmanager")
    return len(sm.list_secret_version_ids(SecretId=secret_name, IncludeDeprecated=True)["Versions"])


def resource_policy(secret_name):
    response = boto3.client("secretsmanager").get_resource_policy(SecretId=secret_name)
    return json.loads(response["ResourcePolicy"]) if response.get("ResourcePolicy") else None


def sent_emails():
    from moto.ses.models import ses_backends

    return len(ses_backends[ACCOUNT_ID]["us-east-1"].sent_messages)


# --- 1. the key check before deactivation --------------------------------------------------------------------


def test_the_older_key_is_deactivated_only_after_the_stored_key_authenticates(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    rotation = aws.scheduled_run()
    (new,) = set(keys("app")) - {old}
    assert KEY_CHECK not in rotation.states_entered()  # a rotation keeps the old key Active: nothing to prove

    aws.advance(7)
    run = aws.scheduled_run()

    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "retired"})
    assert keys("app") == {old: "Inactive", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    entered = run.states_entered()
    assert entered.index(KEY_CHECK) + 1 == entered.index("Deactivate old key")
    # The check ran before the deactivation call was even scheduled, on the key the secret holds.
    checked = event_index(run, lambda e: e.get("taskSucceededEventDetails", {}).get("resourceType") == "lambda"
                          and "authenticatesAs" in e["taskSucceededEventDetails"]["output"])
    deactivated = event_index(run, lambda e: "updateAccessKey" in json.dumps(e.get("taskScheduledEventDetails", {})))
    assert checked < deactivated
    (invocation,) = invocations_of(run, "KeyCheckFunction")
    assert invocation["Payload"] == {"user": "app", "account": ACCOUNT_ID, "secretName": "iam-key-rotation/app", "keyId": new}
    # Its result holds key ids and an ARN only: never the secret it read.
    assert key_check_results(run) == [
        {"user": "app", "keyId": new, "authenticatesAs": f"arn:aws:iam::{ACCOUNT_ID}:user/app"}
    ]
    stored_secret = account.secret_value("iam-key-rotation/app")["SecretAccessKey"]
    assert not [t for t in run.published_texts() if stored_secret in t]
    assert run.retry_delays == []
    assert_sound(aws, run)


def test_a_new_key_iam_does_not_accept_yet_is_retried_until_it_is(emulate):
    # IAM takes seconds to accept a new key everywhere: STS rejects the stored key twice, then accepts it.
    aws = emulate(account_with(("app", [key(7, in_secret=True), key(97)])))
    current, older = current_and_older("app")

    with failing("sts", "get_caller_identity", "InvalidClientTokenId", times=2, runs_only=True) as fault:
        run = aws.scheduled_run()

    assert fault.failures == 2 and fault.calls == 3
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "retired"})
    assert keys("app") == {current: "Active", older: "Inactive"}
    assert failed_task_errors(run) == ["KeyNotYetAccepted", "KeyNotYetAccepted"]
    # The KeyNotYetAccepted Retry: 5 s, then 10 s, each with FULL jitter.
    assert len(run.retry_delays) == 2
    assert 0 <= run.retry_delays[0] <= 5 and 0 <= run.retry_delays[1] <= 10
    assert len(key_check_results(run)) == 1 and run.states_entered().count(KEY_CHECK) == 1


def _sts_rejects_the_key_for_good(aws):
    return failing("sts", "get_caller_identity", "InvalidClientTokenId", runs_only=True)


def _stored_key_deactivated_by_hand_after_the_plan(aws):
    current, _ = current_and_older("app")
    return after_planning(
        lambda: boto3.client("iam").update_access_key(UserName="app", AccessKeyId=current, Status="Inactive")
    )


@pytest.mark.parametrize(
    "rejection", [_sts_rejects_the_key_for_good, _stored_key_deactivated_by_hand_after_the_plan],
    ids=["sts-never-accepts-it", "deactivated-by-hand-after-the-plan"],
)
def test_a_stored_key_that_never_authenticates_keeps_the_older_key_active(emulate, rejection):
    aws = emulate(account_with(("app", [key(7, in_secret=True), key(97)])))
    current, older = current_and_older("app")
    by_hand = rejection is _stored_key_deactivated_by_hand_after_the_plan

    with rejection(aws):
        run = aws.scheduled_run()

    assert keys("app") == {current: "Inactive" if by_hand else "Active", older: "Active"}  # the fallback still works
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert outcomes(run) == {"app": "failed"}
    assert failed_task_errors(run) == ["KeyNotYetAccepted"] * 5  # the first call and MaxAttempts (4) retries
    assert len(run.retry_delays) == 4
    assert all(0 <= d <= bound for d, bound in zip(run.retry_delays, (5, 10, 20, 40)))
    assert "Deactivate old key" not in run.states_entered()
    assert not [t for t in account.tags_of("app") if t == decisions.inactive_since_tag(older)]
    assert run.cause.startswith("1 user(s) failed: app (") and "app: FAILED" in run.emails[0].body
    for text in (run.cause, flat(run.emails[0].body)):
        assert f"kept key {older} Active" in text
        assert f"AWS rejects key {current} that secret iam-key-rotation/app holds (InvalidClientTokenId)" in text
        assert "a deactivated or deleted key never is: re-activate it" in text
    assert run.emails[0].subject == f"IAM access key rotation {START}: 1 failed"

    # Once the stored key works again (IAM caught up, or the person re-activated it), the next run retires.
    if by_hand:
        boto3.client("iam").update_access_key(UserName="app", AccessKeyId=current, Status="Active")
    retry = aws.scheduled_run()
    assert (retry.status, outcomes(retry)) == ("SUCCEEDED", {"app": "retired"})
    assert keys("app") == {current: "Active", older: "Inactive"}


def _plant(secret_value_of):
    """Make the secret's AWSCURRENT a version named for the current key (as the workflow names it) whose value is
    ``secret_value_of(current, older)``: what a person writing the secret by hand can leave behind."""

    def plant(aws):
        # Seeded without a secret: two Active keys, 7 and 97 days old.
        current = max(account.keys_of("app"), key=lambda k: k.created).id
        (older,) = set(keys("app")) - {current}
        boto3.client("secretsmanager").create_secret(
            Name="iam-key-rotation/app",
            ClientRequestToken=decisions.key_version_id(current),
            SecretString=secret_value_of(current, older),
        )
        return current, older

    return plant


def _credentials(user, key_id, **overrides):
    value = {"Version": 1, "UserName": user, "AccessKeyId": key_id, "SecretAccessKey": secret_access_key(user, key_id)}
    return json.dumps({**value, **overrides})


UNUSABLE_SECRETS = {
    "not-json": (
        lambda current, older: "AKIA... / wJalr...",
        "secret iam-key-rotation/app is not the workflow's JSON",
    ),
    "no-secret-access-key": (
        lambda current, older: json.dumps({"Version": 1, "UserName": "app", "AccessKeyId": current}),
        "secret iam-key-rotation/app is not the workflow's JSON",
    ),
    "another-users-key": (
        lambda current, older: _credentials("other", next(iter(keys("other")))),
        "secret iam-key-rotation/app holds a key of user other, not of app",
    ),
    "another-key-id": (
        lambda current, older: _credentials("app", older),
        "secret iam-key-rotation/app holds key {older}, but its version names key {current}",
    ),
}
# What the key check tells a person to do about a secret that holds no usable key of its user.
ADVICE = ("deactivate the key the secret's version names", "then run on demand with force to store a fresh key")


@pytest.mark.parametrize("case", list(UNUSABLE_SECRETS))
def test_a_secret_whose_value_does_not_match_its_version_keeps_the_older_key_active(emulate, case):
    # ``other`` is outside the scope (no tag): its key is real, so planting it in app's secret is a real leak risk.
    aws = emulate(account_with(("app", [key(7), key(97)]), ("other", [key(10)], {}, "/")))
    value_of, problem = UNUSABLE_SECRETS[case]
    current, older = _plant(value_of)(aws)
    assert staged(aws, "app") == {"AWSCURRENT": current}  # to the plan, the secret holds the current key

    try:
        run = aws.scheduled_run()

        assert keys("app") == {current: "Active", older: "Active"}
        assert (run.status, run.error) == ("FAILED", "RotationFailed")
        assert outcomes(run) == {"app": "failed"}
        assert failed_task_errors(run) == ["StoredKeyUnusable"]  # not retried: a person must look
        assert run.retry_delays == []
        assert "Deactivate old key" not in run.states_entered()
        assert run.cause.startswith("1 user(s) failed: app (") and "app: FAILED" in run.emails[0].body
        for text in (run.cause, flat(run.emails[0].body)):
            assert f"kept key {older} Active" in text
            assert problem.format(current=current, older=older) in text
            assert all(step in text for step in ADVICE)
        # The planted secret access key reached none of the output, cause, emails or Lambda payloads.
        assert aws.leaked_texts(run) == []
    finally:
        forced = follow_the_advice(aws, current)  # also leaves the account sound for the fixture's checks

    assert (forced.status, outcomes(forced)) == ("SUCCEEDED", {"app": "rotated"})
    (fresh,) = set(keys("app")) - {older}
    assert keys("app") == {older: "Active", fresh: "Active"}  # the named key made room; the fallback never went
    assert staged(aws, "app")["AWSCURRENT"] == fresh
    assert account.secret_value("iam-key-rotation/app")["AccessKeyId"] == fresh


def follow_the_advice(aws, named_key):
    """Deactivate the key the secret's version names, then run on demand with force."""
    boto3.client("iam").update_access_key(UserName="app", AccessKeyId=named_key, Status="Inactive")
    return aws.start(FORCED)


# --- 2. single flight ----------------------------------------------------------------------------------------


class PausedCreate:
    """Holds the first run that reaches "Create new access key" (run A, mid-rotation) until ``release`` is set.
    Later runs go through, so a second run that did not stop would really create a key."""

    def __init__(self):
        self.paused, self.release = threading.Event(), threading.Event()
        self.calls = 0

        def hold_the_first():
            self.calls += 1
            if self.calls == 1:
                self.paused.set()
                assert self.release.wait(30), "run A was never released"

        self._hook = in_state("Create new access key", before=hold_the_first)

    def __enter__(self):
        self._hook.__enter__()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._hook.__exit__(*exc)


def overlapping_runs(aws, first_input, second_input):
    """Run A (``first_input``) on a thread, paused as it is about to create a key for ``app``; while it is
    RUNNING, run B (``second_input``) on this thread; then release A. Returns (A's Run, B's description, B's
    history, the pause), after checking that B changed no key or secret and sent no email."""
    runs_a = []
    with PausedCreate() as pause:
        thread_a = threading.Thread(target=lambda: runs_a.append(aws.start(first_input)), daemon=True)
        thread_a.start()
        assert pause.paused.wait(30), "run A never reached CreateAccessKey"

        before_b = (keys("app"), staged(aws, "app"), sent_emails())
        arn_b = aws.sfn.start_execution(
            stateMachineArn=aws.deployment.state_machine_arn, name="overlapping", input=json.dumps(second_input)
        )["executionArn"]
        b = aws.sfn.describe_execution(executionArn=arn_b)
        history_b = aws.sfn.get_execution_history(executionArn=arn_b, maxResults=1000)["events"]
        assert (keys("app"), staged(aws, "app"), sent_emails()) == before_b  # B changed nothing, emailed nobody
        arn_a = aws.deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + ":run-001"
        assert aws.sfn.describe_execution(executionArn=arn_a)["status"] == "RUNNING"  # they really overlapped

        pause.release.set()
        thread_a.join(30)
        assert not thread_a.is_alive(), "run A did not finish"
    (a,) = runs_a
    return a, b, history_b, pause


@pytest.mark.parametrize("second", ["forced-on-demand", "same-scheduled-input"])
def test_a_run_that_starts_while_another_runs_changes_nothing(emulate, second):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    scheduled = aws.scheduled_input()
    second_input = FORCED if second == "forced-on-demand" else scheduled

    a, b, history_b, pause = overlapping_runs(aws, scheduled, second_input)

    assert b["status"] == "SUCCEEDED"
    output_b = json.loads(b["output"])
    assert set(output_b) == {"skipped", "reason"} and output_b["skipped"] is True
    assert "run run-001 (started " in output_b["reason"] and "is still running" in output_b["reason"]
    assert "so this run changed nothing" in output_b["reason"]
    entered_b = [e["stateEnteredEventDetails"]["name"] for e in history_b if "stateEnteredEventDetails" in e]
    assert entered_b == ["Plan the run", "Read why the run is skipped", "Another run is in progress"]
    assert not [s for s in aws.issued_secrets if s in b["output"]]

    assert (a.status, outcomes(a)) == ("SUCCEEDED", {"app": "rotated"})  # no other run was running: A proceeded
    assert pause.calls == 1  # one CreateAccessKey in all: never two rotations, never LimitExceeded
    (new,) = set(keys("app")) - {old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert version_count("iam-key-rotation/app") == 2
    assert "LimitExceeded" not in json.dumps(a.all_events(), default=str)

    # The same input once nothing else runs: it proceeds (not skipped), and the rotation is already done.
    again = aws.start(second_input)
    assert again.status == "SUCCEEDED" and "skipped" not in again.output
    assert outcomes(again) == {} and keys("app") == {old: "Active", new: "Active"}


def test_a_skipped_run_gives_its_reason_as_a_sentence(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    _, b, _, _ = overlapping_runs(aws, aws.scheduled_input(), FORCED)

    assert json.loads(b["output"])["reason"].startswith("run run-001 (started ")


# --- 3. idempotency ------------------------------------------------------------------------------------------


def test_the_same_forced_input_twice_rotates_once(emulate):
    aws = emulate(account_with(("app", [key(3, in_secret=True)])))
    (old,) = keys("app")
    first = aws.start(FORCED)
    (new,) = set(keys("app")) - {old}
    after_first = ({old: "Active", new: "Active"}, {"AWSCURRENT": new, "AWSPREVIOUS": old})
    assert outcomes(first) == {"app": "rotated"} and (keys("app"), staged(aws, "app")) == after_first

    second = aws.start(FORCED)  # at once, as a double click does
    aws.advance(1 / 24)
    third = aws.start(FORCED)  # an hour later, as a re-submitted file does: its "time" is still START

    for replay in (second, third):
        assert replay.status == "SUCCEEDED"
        assert outcomes(replay) == {} and replay.emails == [] and replay.output["unchangedUsers"] == 1
        assert "Create new access key" not in replay.states_entered()
    assert (keys("app"), staged(aws, "app")) == after_first
    assert version_count("iam-key-rotation/app") == 2


def test_a_scheduled_input_delivered_again_later_changes_nothing_more(emulate):
    # EventBridge Scheduler retries a delivery (MaximumRetryAttempts 3) with the same scheduled time.
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    scheduled = aws.scheduled_input()
    aws.start(scheduled)
    after_first = (keys("app"), staged(aws, "app"))

    aws.advance(2 / 24)
    again = aws.start(scheduled)

    assert (keys("app"), staged(aws, "app")) == after_first
    assert outcomes(again) == {} and again.emails == []


def test_a_retried_put_secret_value_never_creates_a_second_version(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    assert version_count("iam-key-rotation/app") == 1

    # The first PutSecretValue takes effect and its response is lost; the Retry sends the same ClientRequestToken.
    with failing("secretsmanager", "put_secret_value", "InternalServiceError", times=1, after=True, runs_only=True) as f:
        run = aws.scheduled_run()

    assert f.failures == 1 and f.calls == 2
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})
    (new,) = set(keys("app")) - {old}
    assert version_count("iam-key-rotation/app") == 2  # the seeded version and one for the new key
    versions = boto3.client("secretsmanager").list_secret_version_ids(SecretId="iam-key-rotation/app")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted(map(decisions.key_version_id, (old, new)))
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert len(run.retry_delays) == 1 and 0 <= run.retry_delays[0] <= 2
    assert "Look for unstored keys" not in run.states_entered()  # the Retry succeeded: no cleanup was needed


# --- 4. the per-run cap and the Map's concurrency -------------------------------------------------------------


def test_a_run_rotates_at_most_max_users_per_run_the_oldest_keys_first(emulate):
    ages = {"a": 100, "b": 130, "c": 95, "d": 120, "e": 110}
    aws = emulate(account_with(*[(u, [key(age, in_secret=True)]) for u, age in ages.items()]), MaxUsersPerRun="2")
    original = {u: keys(u) for u in ages}

    rotated_by_run, deferred_by_run = [], []
    for day in range(3):
        run = aws.scheduled_run()
        assert run.status == "SUCCEEDED"
        rotated_by_run.append(sorted(u for u, o in outcomes(run).items() if o == "rotated"))
        deferred_by_run.append(run.output["deferredUsers"])
        if day == 0:
            (email,) = run.emails
            body = flat(email.body)
            assert "3 more user(s) need action and wait for the next runs" in body
            assert "a run acts on at most 2 users (MaxUsersPerRun), the oldest keys first" in body
            assert run.output["rotated"] == 2 and run.output["managedUsers"] == 5
            # The untouched users' keys are exactly as they were.
            assert {u: keys(u) for u in "ace"} == {u: original[u] for u in "ace"}
        aws.advance(1)

    assert rotated_by_run == [["b", "d"], ["a", "e"], ["c"]]  # 130 and 120 days, then 110 and 100, then 95
    assert deferred_by_run == [3, 1, 0]
    for u in ages:
        (old,) = original[u]
        (new,) = set(keys(u)) - {old}
        assert keys(u) == {old: "Active", new: "Active"} and staged(aws, u)["AWSCURRENT"] == new


def test_parallel_users_caps_how_many_users_the_map_acts_on_at_once(emulate):
    aws = emulate(account_with(*[(f"u{i}", [key(95, in_secret=True)]) for i in range(5)]), ParallelUsers="2")
    lock, arrived = threading.Condition(), {"now": 0, "max": 0}

    def arrive():
        with lock:
            arrived["now"] += 1
            arrived["max"] = max(arrived["max"], arrived["now"])
            lock.notify_all()
            lock.wait_for(lambda: arrived["now"] >= 2, timeout=0.5)  # give a third user every chance to start too
        time.sleep(0.05)

    def leave():
        with lock:
            arrived["now"] -= 1

    with in_state("Create new access key", before=arrive, after=leave):
        run = aws.scheduled_run()

    (plan,) = [json.loads(e["taskSucceededEventDetails"]["output"])["Payload"] for e in run.events[:8]
               if e.get("taskSucceededEventDetails", {}).get("resourceType") == "lambda"]
    assert plan["parallelUsers"] == 2
    assert arrived["max"] == 2  # two users at once, never more
    assert (run.status, run.output["rotated"]) == ("SUCCEEDED", 5)


# --- 5. consumer access and encryption ----------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["existing", "created-by-the-rotation"])
def test_the_consumer_principal_may_read_each_rotated_secret_and_nothing_more(emulate, secret):
    aws = emulate(account_with(("app", [key(95, in_secret=secret == "existing")])), ConsumerPrincipalArn=CONSUMER)

    run = aws.scheduled_run()

    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})
    assert "Grant the consumer read access" in run.states_entered()
    assert resource_policy("iam-key-rotation/app") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConsumerReadsTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": CONSUMER},
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": "*",
            }
        ],
    }


def test_without_a_consumer_principal_no_resource_policy_is_written(emulate):
    aws = emulate(account_with(("app", [key(95)]), ("kept", [key(95, in_secret=True)])))

    run = aws.scheduled_run()

    assert outcomes(run) == {"app": "rotated", "kept": "rotated"}
    assert "Grant the consumer read access" not in run.states_entered()
    assert resource_policy("iam-key-rotation/app") is None and resource_policy("iam-key-rotation/kept") is None


@pytest.mark.parametrize("kms_key_arn", ["", OTHER_KMS_KEY], ids=["the-stack's-key", "KmsKeyArn"])
def test_a_secret_the_workflow_creates_is_encrypted_with_the_stack_key(emulate, kms_key_arn):
    aws = emulate(account_with(("app", [key(95)])), **({"KmsKeyArn": kms_key_arn} if kms_key_arn else {}))

    run = aws.scheduled_run()

    assert outcomes(run) == {"app": "rotated"}
    described = boto3.client("secretsmanager").describe_secret(SecretId="iam-key-rotation/app")
    assert described["KmsKeyId"] == (kms_key_arn or STACK_KMS_KEY)


# --- 6. the plan of a large account stays small --------------------------------------------------------------


def test_a_dry_run_over_600_due_users_queues_the_250_oldest_in_batches_of_50(emulate):
    aws = emulate(account_with(), MaxUsersPerRun="250")
    iam_backend = _iam_backend()
    now = decisions.parse_time(START)
    ages = {}
    for i in range(600):  # straight into moto's backend: ~10x faster than 1,800 API calls
        name = f"svc-{(i * 7919) % 600:03d}"  # names in another order than ages, so the sort is by age
        iam_backend.create_user("us-east-1", name, "/", [{"Key": "KeyRotation", "Value": "enabled"}])
        ages[name] = 91 + i
        created = iam_backend.create_access_key(name)
        account.backdate_key(name, created.access_key_id, now - timedelta(days=ages[name], minutes=i))

    run = aws.start({"time": START, "dryRun": True})

    assert (run.status, run.output["managedUsers"], run.output["deferredUsers"]) == ("SUCCEEDED", 600, 350)
    batches = json.loads(boto3.client("s3").get_object(Bucket=aws.deployment.bucket, Key=f"runs/{run.name}/actions.json")["Body"].read())
    assert [len(b["users"]) for b in batches] == [50] * 5
    oldest_first = sorted(ages, key=lambda u: -ages[u])
    assert [u["user"] for b in batches for u in b["users"]] == oldest_first[:250]
    assert {u["outcome"] for b in batches for u in b["users"]} == {"rotate"}
    assert len([c for c in run.children]) == 6  # six batches planned, none acted on
    assert max(len(json.dumps(b)) for b in batches) < 64 * 1024