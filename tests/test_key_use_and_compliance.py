"""Retirement that knows whether a key is still used, and compliance by default, on the real template, state
machine and Lambdas in the emulator:

1. a previous key IAM saw in use within UnusedHours is never deactivated: the user is held, every run, with the
   service, region and date of its last use, and the key is retired on the first run after it fell silent;
2. a key still in use at MaxKeyAgeDays is kept Active and fails the run (KeyInUseAtMaxAge=Keep, the default), or
   deactivated for compliance (Deactivate);
3. across a year of daily runs with the defaults, missed runs included, no Active key of a managed user is ever
   older than MaxKeyAgeDays.
"""

import json
from datetime import timedelta

import boto3

import pytest
from test_rotation_workflow import MANAGED, account_with, emulate, key, keys, outcomes, summary  # noqa: F401 (fixture)

from emulator import account
from emulator.faults import failing

def rotated_user(aws, name="app"):
    """Run until ``name`` was rotated; return (previous key id, new key id)."""
    (before,) = account.keys_of(name)
    run = aws.scheduled_run()
    assert outcomes(run)[name] == "rotated", run.cause
    (new,) = [k.id for k in account.keys_of(name) if k.id != before.id]
    return before.id, new


def test_a_previous_key_in_use_is_held_every_run_and_retired_once_unused(emulate):
    aws = emulate(account_with(("app", [key(80, in_secret=True)], {**MANAGED, "KeyOwnerEmail": "owner@example.com"})))
    previous, new = rotated_user(aws)

    # A consumer keeps signing with the previous key every day, for nine days after the rotation (the key is 89 days
    # old by then: a day more and it would be overdue).
    for day in range(1, 10):
        aws.advance(1)
        account.use_key(previous, aws.clock.now - timedelta(hours=2), service="s3", region="eu-west-1")
        run = aws.scheduled_run()
        assert keys("app") == {previous: "Active", new: "Active"}, f"day {day}: a key in use was deactivated"
        if day >= 7:  # the install window is over: only its use keeps the key Active
            assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "held"})
            (entry,) = summary(run)["users"]
            assert f"previous key {previous} is still in use (last used " in entry["detail"]
            assert "(s3, eu-west-1)" in entry["detail"] and "AttributeValue=" + previous in entry["detail"]
            assert summary(run)["held"] == 1
            (owner_mail,) = [e for e in run.emails if e.destinations == ["owner@example.com"]]
            assert "app: HELD" in owner_mail.body
        else:
            assert outcomes(run) == {}, f"day {day}: inside the install window nothing is due"

    # The consumer moved to the new key: the next run, 26 hours after its last use (UnusedHours 24), retires it.
    aws.advance(1)
    run = aws.scheduled_run()
    assert outcomes(run) == {"app": "retired"}
    assert keys("app") == {previous: "Inactive", new: "Active"}
    (entry,) = summary(run)["users"]
    assert f"key {previous} deactivated" in entry["detail"] and "hours ago" in entry["detail"]


@pytest.mark.parametrize("choice, status, outcome, previous_status", [
    ("Keep", "FAILED", "overdue", "Active"),
    ("Deactivate", "SUCCEEDED", "retired", "Inactive"),
])
def test_a_key_in_use_at_max_age_is_kept_and_alarms_or_is_deactivated_for_compliance(emulate, choice, status, outcome, previous_status):
    aws = emulate(account_with(("app", [key(80, in_secret=True)])), KeyInUseAtMaxAge=choice)
    previous, new = rotated_user(aws)
    aws.advance(10)  # the previous key is 90 days old
    account.use_key(previous, aws.clock.now - timedelta(hours=1))

    run = aws.scheduled_run()

    assert (run.status, outcomes(run)) == (status, {"app": outcome})
    assert keys("app") == {previous: previous_status, new: "Active"}
    if choice == "Keep":
        assert run.error == "RotationFailed"
        assert run.cause.startswith(f"1 user(s) keep a key in use past MaxKeyAgeDays: app (previous key {previous}")
    else:
        (entry,) = summary(run)["users"]
        assert "deactivated for compliance (KeyInUseAtMaxAge=Deactivate)" in entry["detail"]


@pytest.mark.slow
def test_a_year_of_daily_runs_keeps_every_active_key_under_max_age(emulate):
    # Keys of ages up to the rotation age (80 days with the defaults: MaxKeyAgeDays 90 - InstallWindowDays 7 - 3);
    # runs missed on some days, two in a row a few times. The previous key is deactivated at 87 days. (A first
    # install that finds keys older than 80 days rotates them at once: their predecessors pass 87 days.)
    ages = [0, 13, 27, 41, 55, 69, 79, 80]
    aws = emulate(account_with(*[(f"u{age:02d}", [key(age, in_secret=True)]) for age in ages], parameters={}))
    max_age = timedelta(days=90)
    missed = {17, 18, 95, 170, 171, 250, 333}
    oldest = timedelta(0)
    for day in range(366):
        if day:
            aws.advance(1)
        if day in missed:
            continue
        run = aws.scheduled_run()
        assert run.status == "SUCCEEDED", (day, run.cause)
        for user in aws.managed_users():
            for k in account.keys_of(user):
                if k.status == "Active":
                    age = aws.clock.now - k.created
                    oldest = max(oldest, age)
                    assert age < max_age, f"day {day}: {user}'s Active key {k.id} is {age} old"
    assert timedelta(days=86) < oldest < max_age  # the walk did reach the edge it guards


# --- the report topic ------------------------------------------------------------------------------------------


def test_every_run_publishes_its_report_to_the_topic_even_without_email(emulate):
    aws = emulate(account_with(("app", [key(80, in_secret=True)]), parameters={}))

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED" and run.emails == []
    ((subject, message),) = run.published
    assert subject == "IAM access key rotation 2026-01-05T06:00:00Z: 1 rotated"
    assert "app: ROTATED" in message and "never contains a secret" in message


def test_a_report_the_topic_refuses_fails_the_run_after_the_rotation(emulate):
    aws = emulate(account_with(("app", [key(80, in_secret=True)]), parameters={}))

    with failing("sns", "publish", "InternalError", runs_only=True) as fault:
        run = aws.scheduled_run()

    assert fault.failures == 6  # the first try and five retries
    assert (run.status, run.error, outcomes(run)) == ("FAILED", "NotificationFailed", {"app": "rotated"})
    assert run.cause.startswith("The report was not published to the report topic (Sns.InternalErrorException")
    assert len(account.keys_of("app")) == 2  # the rotation happened; only the report is missing


# --- lifecycle events ------------------------------------------------------------------------------------------


def events_on_the_bus():
    """A rule on the default bus that sends every event of the rotation to a queue, as a consumer would set up."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="rotation-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="rotation-events", EventPattern=json.dumps({"source": ["iam-key-rotation"]}))
    events.put_targets(Rule="rotation-events", Targets=[{"Id": "queue", "Arn": arn}])

    def received():
        got = []
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                got.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return [(e["detail-type"], e["detail"]) for e in got]

    return received


def test_every_change_is_an_event_on_the_bus_without_secret_material(emulate):
    aws = emulate(account_with(
        ("app", [key(80, in_secret=True)]),
        ("two-keys", [key(90), key(85)]),
        ("in-use", [key(87, in_secret=False), key(7, in_secret=True)]),
    ))
    received = events_on_the_bus()
    (in_use_previous,) = [k.id for k in account.keys_of("in-use") if (aws.clock.now - k.created).days == 87]
    account.use_key(in_use_previous, aws.clock.now - timedelta(hours=1))

    run = aws.scheduled_run()

    got = received()
    by_type = {}
    for detail_type, detail in got:
        by_type.setdefault(detail_type, []).append(detail)
    assert sorted(by_type) == ["IAM Access Key Held In Use", "IAM Access Key Rotated", "IAM Access Key Rotation Blocked"]
    (rotated,) = by_type["IAM Access Key Rotated"]
    new_key = next(k.id for k in account.keys_of("app") if (aws.clock.now - k.created).days == 0)
    assert rotated["schemaVersion"] == "1" and rotated["account"] == "123456789012" and rotated["run"] == run.name
    assert (rotated["user"], rotated["newKeyId"], rotated["secretVersionId"]) == ("app", new_key, f"key-rotation-{new_key}")
    assert rotated["secretArn"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:iam-key-rotation/app-")
    assert [d["user"] for d in by_type["IAM Access Key Held In Use"]] == ["in-use"]
    assert [d["user"] for d in by_type["IAM Access Key Rotation Blocked"]] == ["two-keys"]
    assert not any(secret in json.dumps(got) for secret in aws.issued_secrets)

    aws.advance(7)  # the install window is over; nobody uses app's previous key
    run = aws.scheduled_run()
    got = received()
    assert [(t, d["user"]) for t, d in got if d["user"] == "app"] == [
        ("IAM Access Key Stored Key Proven", "app"), ("IAM Access Key Deactivated", "app"),
    ]


def test_a_dry_run_puts_no_event(emulate):
    aws = emulate(account_with(("app", [key(80, in_secret=True)])), DryRun="true")
    received = events_on_the_bus()
    aws.scheduled_run()
    assert received() == []


# --- per-user overrides ------------------------------------------------------------------------------------------


def test_an_exempt_user_is_listed_every_run_and_rotated_once_its_exemption_ends(emulate):
    exempt = {**MANAGED, "KeyRotationExemptUntil": "2026-01-06", "KeyRotationExemptReason": "partner freeze, CHG-1234"}
    aws = emulate(account_with(("app", [key(85, in_secret=True)], exempt)))
    received = events_on_the_bus()

    for _ in range(2):  # the 5th and the 6th: the exemption holds through its last day
        run = aws.scheduled_run()
        assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "exempt"})
        assert len(account.keys_of("app")) == 1
        (entry,) = summary(run)["users"]
        assert entry["detail"].startswith("exempt until 2026-01-06 (tag KeyRotationExemptUntil): partner freeze, CHG-1234")
        assert "app: EXEMPT" in run.emails[0].body
        assert [t for t, _ in received()] == ["IAM Access Key Rotation Exempted"]
        aws.advance(1)

    run = aws.scheduled_run()  # the 7th: the exemption is over and ignored, and the report says so
    assert outcomes(run) == {"app": "rotated"}
    (entry,) = summary(run)["users"]
    assert "its exemption ended on 2026-01-06 (tag KeyRotationExemptUntil) and is ignored" in entry["detail"]


def test_a_shorter_maximum_age_by_tag_rotates_earlier(emulate):
    aws = emulate(account_with(
        ("strict", [key(50, in_secret=True)], {**MANAGED, "KeyRotationMaxAgeDays": "60"}),
        ("usual", [key(50, in_secret=True)]),
        ("typo", [key(50, in_secret=True)], {**MANAGED, "KeyRotationMaxAgeDays": "6O"}),
    ))
    run = aws.scheduled_run()
    assert outcomes(run) == {"strict": "rotated", "typo": "blocked"}
    typo = next(u for u in summary(run)["users"] if u["user"] == "typo")
    assert "tag KeyRotationMaxAgeDays='6O' is not a whole number of days" in typo["detail"]
