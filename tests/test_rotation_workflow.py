"""The real state machine, template and Lambda on the emulator: each step of a key's lifecycle (a due key rotated
into a new secret version, the previous key deactivated after the install window and deleted after the recovery
window, and the users that are left alone, blocked, out of scope or need attention), with exact end states of keys,
secret versions, emails and execution status; and where the new secret key is written (the execution history,
which is why it is encrypted) and where it never is (what the functions log).

The helpers and the ``emulate`` fixture here, which checks the invariants and scans for leaked secrets after every
run, are shared: test_rotation_run_modes.py, test_rotation_failures.py, test_rotation_hand_changes.py and the
other emulator tests import them from this module."""

import json

import boto3
import pytest

from emulator import account, stack
from emulator.faults import in_state
from emulator.runner import Emulator

START = "2026-01-05T06:00:00Z"
MANAGED = {"KeyRotation": "enabled"}
NOTIFYING = {"SenderEmail": "rotation@example.com", "NotificationEmails": "team@example.com, owner@example.com"}


def key(age_days, status="Active", in_secret=False, inactive_days_ago=None):
    spec = {"ageDays": age_days, "status": status, "inSecret": in_secret}
    if inactive_days_ago is not None:
        spec["inactiveDaysAgo"] = inactive_days_ago
    return spec


def account_with(*users, parameters=NOTIFYING, verified=("rotation@example.com",)):
    """A fixture of users given as (name, [keys]) or (name, [keys], tags, path)."""
    specs = []
    for name, keys, *rest in users:
        tags, path = (rest + [MANAGED, "/"][len(rest) :])[:2]
        specs.append({"name": name, "keys": list(keys), "tags": tags, "path": path})
    return {"start": START, "parameters": dict(parameters), "verifiedEmails": list(verified), "users": specs}


@pytest.fixture
def emulate(request):
    """emulate(fixture, **parameters) -> a started Emulator. After the test, every run it made is checked for
    the invariants and for secret material in its output, cause, emails and Lambda payloads."""
    started = []

    def start(fixture, **parameters):
        aws = Emulator(fixture, parameters).__enter__()
        started.append(aws)
        return aws

    yield start
    try:
        for aws in started:
            for run in aws.runs:
                assert_sound(aws, run)
    finally:
        for aws in started:
            aws.__exit__(None, None, None)


def keys(user):
    """The user's keys as {id: status}."""
    return {k.id: k.status for k in account.keys_of(user)}


def staged(aws, user):
    """The secret's staged versions as {stage: key id}."""
    return {stage: v.key_id for v in account.secret_versions(aws.secret_prefix + user) for stage in v.stages}


def summary(run):
    """The run's per-user summary: its output, or on failure the copy its cause carries (Run.summary)."""
    return run.summary


def outcomes(run):
    return {u["user"]: u["outcome"] for u in summary(run)["users"]}


def assert_sound(aws, run):
    """The invariants, and no secret access key in the output, cause, emails or Lambda payloads."""
    assert aws.invariant_violations(run) == [], run.name
    assert aws.leaked_texts(run) == [], f"secret material in {run.name}"


def after_planning(effect):
    """``effect`` happens once, after the run planned and before it acts (a person at work meanwhile)."""
    done = []

    def once():
        if not done:
            done.append(effect())

    return in_state("Act on each batch of users", before=once)


def iam():
    return stack.client("iam")


# --- the lifecycle -------------------------------------------------------------------------------------------


def test_due_key_is_rotated_into_a_new_secret_version_and_the_old_key_stays_active(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED"
    (new,) = set(keys("app")) - {old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    stored = account.secret_value("iam-key-rotation/app")
    assert stored["AccessKeyId"] == new and stored["UserName"] == "app" and stored["Version"] == 1
    assert stored["SecretAccessKey"] in aws.issued_secrets
    assert run.output["rotated"] == 1 and run.output["users"][0]["newKeyId"] == new
    assert_sound(aws, run)


def test_previous_key_is_deactivated_after_the_install_window_and_deleted_after_the_recovery_window(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    aws.scheduled_run()
    (new,) = set(keys("app")) - {old}

    timeline = {}
    for day in (6, 7, 13, 14):
        aws.advance(day - (max(timeline) if timeline else 0))
        run = aws.scheduled_run()
        timeline[day] = (keys("app"), outcomes(run).get("app"))
        assert_sound(aws, run)

    assert timeline[6] == ({old: "Active", new: "Active"}, None)
    assert timeline[7] == ({old: "Inactive", new: "Active"}, "retired")
    assert timeline[13] == ({old: "Inactive", new: "Active"}, None)
    assert timeline[14] == ({new: "Active"}, "retired")
    assert staged(aws, "app")["AWSCURRENT"] == new
    # The deleted key's inactive-since tag went with it; the user's tag names the secret that holds its key.
    assert {t: v for t, v in account.tags_of("app").items() if t.startswith("key-rotation:")} == {
        "key-rotation:secret": "iam-key-rotation/app"
    }


def test_missed_runs_never_shorten_the_recovery_window(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    aws.scheduled_run()

    aws.advance(20)  # runs on days 1-19 were missed: the key is deactivated late, on day 20
    aws.scheduled_run()
    assert keys("app")[old] == "Inactive"
    aws.advance(6)
    aws.scheduled_run()
    assert keys("app")[old] == "Inactive"  # day 26: only 6 days Inactive although the current key is 26 days old
    aws.advance(1)
    aws.scheduled_run()
    assert old not in keys("app")


def test_key_that_is_not_due_is_left_alone_and_no_email_is_sent(emulate):
    aws = emulate(account_with(("app", [key(79, in_secret=True)])))
    before = keys("app")

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED"
    assert keys("app") == before
    assert run.emails == []
    assert (run.output["managedUsers"], run.output["unchangedUsers"], run.output["users"]) == (1, 1, [])


def test_missing_secret_is_created_by_the_rotation(emulate):
    aws = emulate(account_with(("app", [key(120)])))
    (old,) = keys("app")

    run = aws.scheduled_run()

    (new,) = set(keys("app")) - {old}
    assert staged(aws, "app") == {"AWSCURRENT": new}
    assert keys("app") == {old: "Active", new: "Active"}
    assert_sound(aws, run)


def test_keys_are_not_retired_before_the_workflow_has_stored_one(emulate):
    # Consumers of a key the workflow never stored may still use it: without a secret nothing is deactivated.
    aws = emulate(account_with(("app", [key(60), key(30)])))
    before = keys("app")

    run = aws.scheduled_run()

    assert keys("app") == before and outcomes(run) == {}


def test_an_inactive_key_is_deleted_to_make_room_for_the_new_one(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True), key(120, "Inactive", inactive_days_ago=2)])))
    current, spare = sorted(keys("app"), key=lambda k: keys("app")[k])  # Active sorts before Inactive

    run = aws.scheduled_run()

    assert spare not in keys("app")
    (new,) = set(keys("app")) - {current}
    assert keys("app") == {current: "Active", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": current}
    assert outcomes(run) == {"app": "rotated"}


def test_two_active_keys_block_the_user_and_change_nothing(emulate):
    aws = emulate(account_with(("app", [key(200), key(100)])))
    before = keys("app")

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED"  # a blocked user is reported, not a failure
    assert keys("app") == before and staged(aws, "app") == {}
    assert outcomes(run) == {"app": "blocked"}
    (email,) = run.emails
    assert "app: BLOCKED" in email.body and "Deactivate the one no consumer uses" in email.body.replace("\n    ", " ")


def test_a_user_without_keys_gets_none_on_schedule_and_one_when_forced(emulate):
    aws = emulate(account_with(("app", [])))

    aws.scheduled_run()
    assert keys("app") == {}

    run = aws.start({"users": ["app"], "force": True})
    (new,) = keys("app")
    assert staged(aws, "app") == {"AWSCURRENT": new}
    assert outcomes(run) == {"app": "rotated"}


def test_force_rotates_a_named_user_whatever_the_key_age(emulate):
    aws = emulate(account_with(("app", [key(3, in_secret=True)]), ("other", [key(95, in_secret=True)])))
    other_before = keys("other")

    run = aws.start({"time": START, "users": ["app"], "force": True})

    assert len(keys("app")) == 2 and outcomes(run) == {"app": "rotated"}
    assert keys("other") == other_before  # due, but not named


def test_users_outside_the_scope_are_never_changed(emulate):
    aws = emulate(
        account_with(
            ("untagged", [key(400, in_secret=True)], {}, "/"),
            ("wrong-value", [key(400)], {"KeyRotation": "disabled"}, "/"),
            ("managed", [key(10, in_secret=True)]),
        )
    )
    before = {u: keys(u) for u in ("untagged", "wrong-value")}

    run = aws.scheduled_run()

    assert {u: keys(u) for u in before} == before
    assert run.output["managedUsers"] == 1

    rejected = aws.start({"time": START, "users": ["untagged"], "force": True})
    assert (rejected.status, rejected.error) == ("FAILED", "InvalidInput")
    assert "user untagged is not managed by this stack" in rejected.cause
    assert keys("untagged") == before["untagged"]


def test_a_secret_scheduled_for_deletion_needs_attention_and_changes_nothing(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    boto3.client("secretsmanager").delete_secret(SecretId="iam-key-rotation/app", RecoveryWindowInDays=7)
    before = keys("app")

    run = aws.scheduled_run()

    assert keys("app") == before
    assert outcomes(run) == {"app": "attention"}
    assert "aws secretsmanager restore-secret --secret-id iam-key-rotation/app" in run.output["users"][0]["detail"]


# --- the new secret key: in the execution history, never in the logs -----------------------------------------


def test_the_execution_history_records_the_new_secret_key_which_is_why_it_is_encrypted(emulate):
    # Step Functions records CreateAccessKey's raw result in the history whatever ResultSelector keeps, so the
    # history is encrypted with the stack's customer-managed key (docs/threat-model.md; test_least_privilege.py
    # proves the encryption). This test pins the fact, and proves the leak scan above can see a secret.
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    run = aws.scheduled_run()

    events = [e for history in run.histories() for e in history]  # the user's steps run in a child execution
    created = [e for e in events if e.get("taskSucceededEventDetails", {}).get("resourceType") == "aws-sdk:iam"]
    stored = account.secret_value("iam-key-rotation/app")["SecretAccessKey"]
    assert any(stored in e["taskSucceededEventDetails"]["output"] for e in created)
    assert stored not in json.dumps(run.output)


def test_the_functions_log_no_secret(emulate, caplog):
    # What the Lambda functions log goes to CloudWatch Logs: key ids and decisions, never a secret key. A full
    # lifecycle (rotate, prove the stored key, deactivate, delete) at INFO, the level the functions log at.
    caplog.set_level("INFO")
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    runs = [aws.scheduled_run()]
    for _ in range(2):
        aws.advance(7)
        runs.append(aws.scheduled_run())

    assert [outcomes(r) for r in runs] == [{"app": "rotated"}, {"app": "retired"}, {"app": "retired"}]
    assert "authenticates as" in caplog.text  # the key check ran and logged
    assert aws.issued_secrets and not any(secret in caplog.text for secret in aws.issued_secrets)
