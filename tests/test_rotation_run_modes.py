"""How a run is asked for, configured and reported, on the real state machine, template and Lambda in the emulator:
dry runs (by input or by parameter), the same input twice, the execution's start time as the default time, bad
input refused with a clear error, a run restricted to named users, the secret name prefix, contradictory windows
refused with advice; and the one report email per run (its sender, recipients, subject and key ids, no secret),
none without a sender, and a failed run when the sender is unverified although the rotation happened.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans for leaked secrets after
every run."""

import json

import decisions
import pytest
from test_rotation_workflow import START, account_with, assert_sound, emulate, key, keys, outcomes, staged  # noqa: F401 (emulate is a fixture)

from emulator import account


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


def test_contradictory_windows_fail_the_run_with_advice_and_change_nothing(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])), MaxKeyAgeDays="10")
    before = keys("app")

    run = aws.scheduled_run()

    assert keys("app") == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "MaxKeyAgeDays (10) must be at least 25 with InstallWindowDays 7 and RecoveryWindowDays 7" in run.cause
    assert "The run failed before any user was processed" in run.emails[0].body


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
