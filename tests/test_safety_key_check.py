"""The key check, on the real template, state machine and Lambdas in the emulator: an older key is deactivated
only after the key its secret holds has authenticated as the user, retried while IAM propagates a new key, and
never when the stored key does not work (AWS rejects it, it was deactivated by hand, or the secret holds
something other than the key its version names), each failure naming the fix.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans every run's output,
cause, emails and Lambda payloads for secret access keys after each test.
"""

from __future__ import annotations

import json

import boto3
import decisions
import pytest
from safety_helpers import FORCED, flat, moto_iam_backend
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
from emulator.faults import failing
from emulator.stack import ACCOUNT_ID

KEY_CHECK = "Prove the stored key works"


# --- helpers -------------------------------------------------------------------------------------------------


def secret_access_key(user, key_id):
    """Test harness only: the secret half of a key IAM issued, to plant it in a secret."""
    return next(k.secret_access_key for k in moto_iam_backend().get_user(user).access_keys if k.access_key_id == key_id)


def current_and_older(user):
    """(the key its secret holds, the other key) of a user seeded with key(7, in_secret=True) and key(97)."""
    (held,) = [v.key_id for v in account.secret_versions("iam-key-rotation/" + user) if "AWSCURRENT" in v.stages]
    (older,) = set(keys(user)) - {held}
    return held, older


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
