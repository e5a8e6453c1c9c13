"""What travels in the execution's state stays far under Step Functions' 256 KiB, at the per-run cap's maximum
and the worst items; and the functions' new rules (single flight, notices, owners, grants) at their edges."""

import json
from datetime import datetime, timedelta, timezone

import app
import decisions
import pytest
import report
from samtranslator.yaml_helper import yaml_parse

from emulator import stack

STATE_LIMIT = 256 * 1024
NOW = datetime(2026, 3, 1, 6, tzinfo=timezone.utc)
TEMPLATE = yaml_parse((stack.ROOT / "template.yaml").read_text())
MAX_USERS = int(TEMPLATE["Parameters"]["MaxUsersPerRun"]["MaxValue"])


def settings(**overrides):
    values = dict(
        policy=decisions.Policy.from_days(90, 7, 7, 7), user_path="/", user_tag_key="KeyRotation",
        user_tag_value="enabled", secret_name_prefix="iam-key-rotation/", dry_run=False,
        sender_email="rotation@example.com", notification_emails=("team@example.com",),
        owner_tag_key="KeyOwnerEmail", consumer_principal_arn="arn:aws:iam::123456789012:role/consumer",
    )
    return app.Settings(**{**values, **overrides})


def worst_item(n):
    """The largest plan item: rotation that makes room (delete, forget), with an owner and a consumer grant."""
    user = f"service-account-with-a-long-name-{n:05d}"[:64]
    keys = [decisions.Key(f"AKIA{n:016d}", True, NOW - timedelta(days=200)), decisions.Key(f"AKIB{n:016d}", False, NOW - timedelta(days=300), NOW - timedelta(days=100))]
    decision = decisions.decide(user, keys, decisions.Secret(True, keys[0].id), NOW, settings().policy)
    assert decision.rotate and decision.delete_key_id
    item = report.plan_item(decision, "iam-key-rotation/" + user, [k.id for k in keys])
    return {**item, "owner": f"owner-of-{n}@platform.example.com", "grantConsumer": True}


def worst_plan():
    return {
        "time": decisions.format_time(NOW), "dryRun": False, "scheduled": True, "parallelUsers": 5,
        "managedUsers": 10_000, "unchangedUsers": 9_000,
        "actions": [worst_item(n) for n in range(MAX_USERS)],
        "blocked": [{"user": f"blocked-{n:05d}", "reason": "x" * 330, "owner": "o@example.com"} for n in range(app.MAX_LISTED)],
        "blockedUsers": 400,
        "attention": [{"user": f"attention-{n:05d}", "reason": "w" * 500, "owner": "o@example.com"} for n in range(app.MAX_LISTED)],
        "attentionUsers": 300,
        "unreadable": [{"user": f"unreadable-{n:05d}", "reason": "y" * 200} for n in range(app.MAX_LISTED)],
        "unreadableUsers": 150,
        "notices": [{"user": f"noticed-{n:05d}", "notices": ["z" * 200, "z" * 200], "owner": f"o{n}@example.com"} for n in range(app.MAX_LISTED)],
        "deferredUsers": 9_000,
    }


def size(document) -> int:
    return len(json.dumps(document).encode())


def test_the_state_during_the_map_and_into_the_report_stays_under_the_limit():
    plan = worst_plan()
    results = [{"user": a["user"], "status": "succeeded", "newKeyId": "AKIA" + "9" * 16} for a in plan["actions"]]
    state = {"plan": plan, "results": results, "runError": None}
    print(f"plan {size(plan)} bytes for {MAX_USERS} worst items; state into the report {size(state)} bytes")
    assert size(state) < 0.8 * STATE_LIMIT  # the report Task's input: the largest state of a run


def test_the_report_that_replaces_the_state_stays_under_the_limit():
    plan = worst_plan()
    failures = [{"user": a["user"], "status": "failed", "error": "Iam.ServiceFailureException", "cause": "c" * 500} for a in plan["actions"]]
    built = report.build({"plan": plan, "results": failures}, settings())
    print(f"report {size(built)} bytes: summary {size(built['summary'])}, body {len(built['body'])}, owners {size(built['ownerEmails'])}")
    assert size({"report": built}) < 0.8 * STATE_LIMIT
    assert len(built["failureCause"]) <= report.MAX_CAUSE_CHARS
    assert built["summary"]["failed"] == MAX_USERS + 150 and built["summary"]["blocked"] == 400
    assert built["summary"]["attention"] == 300
    assert "more failed, blocked or attention users are not listed" in built["body"]


# --- single flight -------------------------------------------------------------------------------------------


class Executions:
    def __init__(self, *running):
        self.running = [{"executionArn": arn, "name": arn.rsplit(":", 1)[1], "startDate": start} for arn, start in running]

    def get_paginator(self, _):
        return self

    def paginate(self, **_):
        return [{"executions": self.running}]


ARN = "arn:aws:states:us-east-1:123456789012:execution:key-rotation-rotation:"


def test_a_run_yields_to_an_earlier_running_run_even_before_it_is_listed_itself():
    earlier = Executions((ARN + "scheduled", NOW - timedelta(minutes=30)))  # this run is not listed yet
    with pytest.raises(app.RunInProgress, match="run scheduled .* is still running"):
        app.ensure_single_flight(earlier, "sm", ARN + "mine", decisions.format_time(NOW))


def test_the_earliest_run_goes_on_and_a_tie_goes_to_the_smaller_name():
    both = Executions((ARN + "b", NOW), (ARN + "a", NOW))
    app.ensure_single_flight(both, "sm", ARN + "a", decisions.format_time(NOW))  # goes on
    with pytest.raises(app.RunInProgress):
        app.ensure_single_flight(both, "sm", ARN + "b", decisions.format_time(NOW))
    later = Executions((ARN + "later", NOW + timedelta(seconds=1)))
    app.ensure_single_flight(later, "sm", ARN + "mine", decisions.format_time(NOW))  # a later run does not stop it


# --- notices, owners, the time bound ---------------------------------------------------------------------------


def key(days, active=True, inactive_days=None):
    return decisions.Key(f"AKIA{days:016d}", active, NOW - timedelta(days=days), NOW - timedelta(days=inactive_days) if inactive_days else None)


@pytest.mark.parametrize("age, notice", [(82, None), (83, "will be rotated on 2026-03-08 (in 7 days)"), (89, "in 1 day"), (90, None)])
def test_owners_hear_of_a_rotation_within_the_notice_window(age, notice):
    current = key(age)
    decision = decisions.decide("u", [current], decisions.Secret(True, current.id), NOW, settings().policy)
    assert ([n for n in decision.notices if notice in n] != []) if notice else not any("rotated" in n for n in decision.notices)


def test_owners_hear_of_a_deactivation_only_once_the_secret_holds_the_current_key():
    current, older = key(3), key(95)
    healthy = decisions.decide("u", [current, older], decisions.Secret(True, current.id), NOW, settings().policy)
    assert any(f"key {older.id} will be deactivated on 2026-03-05" in n for n in healthy.notices)
    unstored = decisions.decide("u", [current, older], decisions.Secret(False), NOW, settings().policy)
    assert not any("deactivated" in n for n in unstored.notices)


@pytest.mark.parametrize("tag, domains, owner", [
    ("dev@example.com", (), "dev@example.com"),
    ("dev@example.com", ("example.com",), "dev@example.com"),
    ("dev@evil.example", ("example.com",), None),
    ("not an address", (), None),
])
def test_an_owner_is_a_valid_address_in_the_allowed_domains(tag, domains, owner):
    assert app._owner({"KeyOwnerEmail": tag}, settings(owner_email_domains=domains)) == owner


def test_a_time_in_the_future_is_rejected_and_a_little_clock_skew_is_not():
    start = decisions.format_time(NOW)
    with pytest.raises(decisions.InvalidInput, match="after the run started"):
        decisions.parse_run_request({"time": decisions.format_time(NOW + timedelta(days=30))}, start)
    assert decisions.parse_run_request({"time": decisions.format_time(NOW + timedelta(minutes=2))}, start).time > NOW


class Policies:
    def __init__(self, policy):
        self.policy = policy

    def get_resource_policy(self, SecretId):
        return {"ResourcePolicy": json.dumps(self.policy)} if self.policy else {}


CONSUMER = "arn:aws:iam::123456789012:role/consumer"
OURS = {"Sid": "ConsumerReadsTheKey", "Effect": "Allow", "Principal": {"AWS": CONSUMER}, "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}


@pytest.mark.parametrize("policy, needed", [
    (None, True),
    ({"Statement": [OURS]}, False),
    ({"Statement": [{**OURS, "Principal": {"AWS": "arn:aws:iam::123456789012:role/old"}}]}, True),
    ({"Statement": [{**OURS, "Effect": "Deny"}]}, True),
    ({"Statement": [{"Sid": "SomeoneElses", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]}, False),
])
def test_the_consumer_grant_never_overwrites_a_policy_the_workflow_did_not_write(policy, needed):
    assert app._needs_grant(Policies(policy), "s", CONSUMER) is needed
