"""The real state machine, template and Lambda on the emulator: each lifecycle step and edge case, with exact end
states of keys, secret versions, emails and execution status."""

import dataclasses
import json
from unittest import mock

import boto3
import decisions
import pytest

from emulator import account, stack
from emulator.faults import failing, in_state
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
    """The run's per-user summary: its output, or on failure the copy its cause carries."""
    return run.output or json.loads(run.cause.split("Summary: ", 1)[1])


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


# --- run modes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["input", "parameter"])
def test_dry_run_reports_the_plan_and_changes_nothing(emulate, how):
    fixture = account_with(("app", [key(95, in_secret=True)]), ("old", [key(30, in_secret=True), key(60)]))
    aws = emulate(fixture, **({"DryRun": "true"} if how == "parameter" else {}))
    before = {u: keys(u) for u in ("app", "old")}

    run = aws.start({"time": START, "dryRun": True} if how == "input" else aws.scheduled_input())

    assert {u: keys(u) for u in before} == before
    assert outcomes(run) == {"app": "would-rotate", "old": "would-retire"}
    assert "Act on each batch of users" not in run.states_entered()
    assert {c.map_run_arn.rsplit(":", 1)[0].rsplit("/", 1)[1] for c in run.children} == {"plan"}  # planned, never acted
    (email,) = run.emails
    assert email.subject.startswith("[dry run]")


def test_the_same_input_twice_changes_nothing_more(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    aws.scheduled_run()
    after_first = (keys("app"), staged(aws, "app"))

    second = aws.start(aws.scheduled_input())

    assert (keys("app"), staged(aws, "app")) == after_first
    assert outcomes(second) == {} and second.emails == []


def test_without_time_the_run_uses_the_execution_start_time(emulate):
    aws = emulate(account_with(("app", [key(85, in_secret=True)])))
    aws.advance(5)  # the key is now 90 days old; the execution starts at the clock's time

    started = aws.clock.now
    run = aws.start({})

    assert run.output["time"] == decisions.format_time(started)
    assert outcomes(run) == {"app": "rotated"}


@pytest.mark.parametrize(
    "execution_input, complaint",
    [
        ({"time": "5 January"}, '"time" must be an ISO-8601 UTC time'),
        ({"users": "app"}, '"users" must be a non-empty list'),
        ({"force": True}, '"force" rotates named users only'),
        ({"time": START, "verbose": True}, "unknown field(s) verbose"),
        ({"time": START, "users": ["ghost"]}, "no IAM user is named ghost"),
        ([], "the execution input must be a JSON object"),
        ("not json at all", "the execution input must be a JSON object"),
    ],
    ids=["bad-time", "users-not-a-list", "force-without-users", "unknown-field", "unknown-user", "a-list", "a-string"],
)
def test_bad_input_fails_with_a_clear_error_and_changes_nothing(emulate, execution_input, complaint):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    run = aws.start(json.dumps(execution_input) if execution_input != "not json at all" else '"not json at all"')

    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert complaint in run.cause
    assert (keys("app"), staged(aws, "app")) == before
    assert run.emails == []


# --- email ---------------------------------------------------------------------------------------------------


def test_one_email_per_run_to_every_recipient_with_key_ids_and_no_secret(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)]), ("blocked", [key(200), key(100)])))

    run = aws.scheduled_run()

    (email,) = run.emails
    assert email.source == "rotation@example.com"
    assert email.destinations == ["team@example.com", "owner@example.com"]
    assert email.subject == f"IAM access key rotation {START}: 1 rotated, 1 blocked"
    (rotated,) = [u for u in run.output["users"] if u["outcome"] == "rotated"]
    assert rotated["newKeyId"] in email.body
    assert_sound(aws, run)


def test_no_email_without_a_sender(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)]), parameters={}))

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED" and run.emails == [] and outcomes(run) == {"app": "rotated"}


def test_an_unverified_sender_still_rotates_but_fails_the_run(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)]), verified=()))

    run = aws.scheduled_run()

    assert len(keys("app")) == 2  # the rotation happened
    assert (run.status, run.error) == ("FAILED", "NotificationFailed")
    assert run.cause.startswith("The report email was not sent (Ses.MessageRejectedException: ")
    assert outcomes(run) == {"app": "rotated"}
    assert_sound(aws, run)


# --- failures ------------------------------------------------------------------------------------------------


def test_a_failed_store_deletes_the_new_key_and_fails_the_run(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("secretsmanager", "put_secret_value", "InternalServiceError") as fault:
        run = aws.scheduled_run()

    assert fault.failures == 7  # the first call and MaxAttempts (6) retries
    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "SecretsManager.InternalServiceErrorException" in run.cause
    assert "app: FAILED" in run.emails[0].body
    assert_sound(aws, run)


def test_one_failing_user_does_not_stop_the_others(emulate):
    aws = emulate(account_with(*[(name, [key(95, in_secret=True)]) for name in ("a", "b", "c")]))

    with failing("iam", "create_access_key", "ServiceFailure", when=lambda user_name, *_, **__: user_name == "b"):
        run = aws.scheduled_run()

    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert outcomes(run) == {"a": "rotated", "b": "failed", "c": "rotated"}
    assert len(keys("a")) == 2 and len(keys("b")) == 1 and len(keys("c")) == 2
    assert "1 user(s) failed: b (" in run.cause
    assert_sound(aws, run)


def test_throttling_is_retried_with_exponential_backoff(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    with failing("iam", "create_access_key", "Throttling", times=2):
        run = aws.scheduled_run()

    assert run.status == "SUCCEEDED" and outcomes(run) == {"app": "rotated"}
    # FULL jitter: each delay is drawn from [0, 2 * 2^attempt] seconds.
    assert len(run.retry_delays) == 2
    assert 0 <= run.retry_delays[0] <= 2 and 0 <= run.retry_delays[1] <= 4


def test_a_planning_failure_is_emailed_and_fails_the_run_with_nothing_changed(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("iam", "get_account_authorization_details", "AccessDenied"):
        run = aws.scheduled_run()

    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "AccessDenied" in run.cause
    (email,) = run.emails
    assert email.subject == f"IAM access key rotation {START}: run failed"
    assert "The run failed before any user was processed" in email.body


def test_a_run_restricted_to_named_users_leaves_the_others_alone(emulate):
    aws = emulate(account_with(("a", [key(95, in_secret=True)]), ("b", [key(95, in_secret=True)])))
    b_before = keys("b")

    run = aws.start({"time": START, "users": ["a"]})

    assert outcomes(run) == {"a": "rotated"} and run.output["managedUsers"] == 1
    assert keys("b") == b_before


def test_the_secret_name_prefix_parameter_names_the_secret(emulate):
    aws = emulate(account_with(("app", [key(95)])), SecretNamePrefix="team-a/keys/")

    run = aws.scheduled_run()

    assert outcomes(run) == {"app": "rotated"}
    assert account.secret_versions("iam-key-rotation/app") == []
    assert staged(aws, "app")["AWSCURRENT"] in keys("app")  # staged() reads <SecretNamePrefix>app
    assert aws.secret_prefix == "team-a/keys/"


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


# --- ambiguous failures and races --------------------------------------------------------------------------


def test_a_store_that_succeeded_despite_its_error_keeps_the_new_key(emulate):
    # The first PutSecretValue takes effect but its response is lost; so do the retries (idempotent by token).
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", after=True):
        run = aws.scheduled_run()

    (new,) = set(keys("app")) - {old}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})


def test_a_create_that_succeeded_despite_its_error_leaves_no_stray_key(emulate):
    # The first CreateAccessKey creates a key whose response is lost; the retry meets IAM's two-key limit.
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("iam", "create_access_key", "ServiceFailure", times=1, after=True):
        run = aws.scheduled_run()

    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, outcomes(run)) == ("FAILED", {"app": "failed"})
    assert "was not stored, so it was deleted again" in summary(run)["users"][0]["detail"]

    aws.advance(1)
    retried = aws.scheduled_run()  # the fault has cleared: the next run converges
    assert outcomes(retried) == {"app": "rotated"} and len(keys("app")) == 2


def test_a_failed_first_store_deletes_the_new_key_and_creates_no_secret(emulate):
    aws = emulate(account_with(("app", [key(95)])))
    before = keys("app")

    with failing("secretsmanager", "create_secret", "InternalServiceError"):
        run = aws.scheduled_run()

    assert keys("app") == before and staged(aws, "app") == {}
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "SecretsManager.InternalServiceErrorException" in run.cause


def test_a_new_key_that_can_be_neither_stored_nor_deleted_is_reported_for_deletion_by_hand(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    with failing("secretsmanager", "put_secret_value", "InternalServiceError"), failing(
        "iam", "delete_access_key", "ServiceFailure"
    ):
        run = aws.scheduled_run()

    (orphan,) = set(keys("app")) - {old}
    assert staged(aws, "app") == {"AWSCURRENT": old}  # consumers still have a working key
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    body = run.emails[0].body.replace("\n    ", " ")
    assert f"aws iam delete-access-key --user-name app --access-key-id {orphan}" in body
    # Invariant 2 holds only because the report names the key with the command to delete it.
    assert aws.invariant_violations(run) == []
    silent = dataclasses.replace(
        run,
        cause=run.cause.replace(orphan, "<key>"),
        emails=[dataclasses.replace(e, body=e.body.replace(orphan, "<key>")) for e in run.emails],
        published=[(subject, message.replace(orphan, "<key>")) for subject, message in run.published],
    )
    assert aws.invariant_violations(silent) == [
        f"run-001: key {orphan} was created, and no secret holds it, nor was it deleted or reported for deletion"
    ]


def test_a_key_reactivated_after_the_plan_is_not_deleted(emulate):
    # Day 14 after a rotation: the old key is due for deletion, but a person re-activates it meanwhile.
    aws = emulate(account_with(("app", [key(14, in_secret=True), key(120, "Inactive", inactive_days_ago=7)])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    with after_planning(lambda: iam().update_access_key(UserName="app", AccessKeyId=old, Status="Active")):
        run = aws.scheduled_run()

    assert keys("app") == {current: "Active", old: "Active"}
    assert (run.status, outcomes(run)) == ("FAILED", {"app": "failed"})
    assert f"key {old} was re-activated after this run planned to delete it" in run.cause


def test_a_key_deleted_by_hand_after_the_plan_counts_as_deleted(emulate):
    aws = emulate(account_with(("app", [key(14, in_secret=True), key(120, "Inactive", inactive_days_ago=7)])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    with after_planning(lambda: iam().delete_access_key(UserName="app", AccessKeyId=old)):
        run = aws.scheduled_run()

    assert keys("app") == {current: "Active"}
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "retired"})


# --- tags, stale secrets, configuration --------------------------------------------------------------------


def test_a_key_deactivated_by_hand_gets_its_full_recovery_window_from_first_sight(emulate):
    aws = emulate(account_with(("app", [key(40, in_secret=True), key(130, "Inactive")])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    aws.scheduled_run()
    assert account.tags_of("app")[f"key-rotation:inactive-since:{old}"] == START
    aws.advance(6)
    aws.scheduled_run()
    assert old in keys("app")  # 6 days Inactive as far as anyone knows, although the current key is 46 days old
    aws.advance(1)
    aws.scheduled_run()
    assert old not in keys("app")


def test_a_reactivated_key_loses_its_inactive_since_tag(emulate):
    aws = emulate(account_with(("app", [key(3, in_secret=True), key(100, inactive_days_ago=20)])))

    run = aws.scheduled_run()

    assert not [t for t in account.tags_of("app") if t.startswith(decisions.INACTIVE_SINCE_TAG_PREFIX)]
    assert run.emails == []  # housekeeping is not news


def test_a_secret_holding_a_deleted_key_needs_attention_until_a_rotation_is_forced(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True), key(10)])))
    held = staged(aws, "app")["AWSCURRENT"]
    iam().delete_access_key(UserName="app", AccessKeyId=held)
    before = keys("app")

    attention = aws.scheduled_run()
    assert keys("app") == before and outcomes(attention) == {"app": "attention"}
    detail = attention.output["users"][0]["detail"]
    assert f"its secret iam-key-rotation/app holds key {held}, which is not an Active key" in detail

    forced = aws.start({"time": START, "users": ["app"], "force": True})
    assert outcomes(forced) == {"app": "rotated"}
    assert staged(aws, "app")["AWSCURRENT"] in keys("app")


def test_contradictory_windows_fail_the_run_with_advice_and_change_nothing(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])), MaxKeyAgeDays="10")
    before = keys("app")

    run = aws.scheduled_run()

    assert keys("app") == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "MaxKeyAgeDays (10) must be at least 25 with InstallWindowDays 7 and RecoveryWindowDays 7" in run.cause
    assert "The run failed before any user was processed" in run.emails[0].body



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
