"""What travels between states stays far under Step Functions' 256 KiB: under 128 KiB for every Task's input and
result and every child execution's, at the worst items, whatever the account's size; and the functions' rules at
their edges (single flight, notices, owners, the consumer grant)."""

import json
from datetime import datetime, timedelta, timezone

import decisions
import plan_run
import pytest
import reading
import report
import run_records
from settings import Settings

LIMIT = 128 * 1024  # this project's bound: half Step Functions' 256 KiB
NOW = datetime(2026, 3, 1, 6, tzinfo=timezone.utc)
USERS = 100_000


def settings(**overrides):
    values = dict(
        policy=decisions.Policy.from_days(90, 7, 7, 7), user_path="/", user_tag_key="KeyRotation",
        user_tag_value="enabled", secret_name_prefix="iam-key-rotation/", dry_run=False,
        sender_email="rotation@example.com", notification_emails=("team@example.com",),
        owner_tag_key="KeyOwnerEmail", consumer_principal_arn="arn:aws:iam::123456789012:role/consumer",
    )
    return Settings(**{**values, **overrides})


ACCOUNT = "123456789012"
ROLE = f"arn:aws-us-gov:iam::{ACCOUNT}:role/" + "m" * 40  # the longest partition and MemberRoleName


def name(n: int) -> str:
    return f"service-account-with-a-long-name-{n:06d}".ljust(64, "x")  # IAM's longest user name


def worst_user_to_plan(n: int) -> dict:
    """A user as "Plan the run" writes it: the longest name, owner and secret name, two inactive-since tags."""
    tags = {decisions.inactive_since_tag(f"AKIA{n:016d}"): "2026-01-01T00:00:00Z", decisions.inactive_since_tag(f"AKIB{n:016d}"): "2026-01-01T00:00:00Z",
            decisions.SECRET_TAG: "iam-key-rotation/" + name(n), "KeyOwnerEmail": ("o" * 200) + "@platform.example.com"}
    secret = decisions.Secret(True, f"AKIA{n:016d}", name="iam-key-rotation/" + name(n))
    return plan_run._to_plan(name(n), {**tags, **{f"team-{i}": "v" * 256 for i in range(46)}}, secret, settings(), ACCOUNT, ROLE)


def worst_item(n: int) -> dict:
    """The largest plan item: a rotation that makes room (delete, forget), with an owner and a consumer grant."""
    keys = [decisions.Key(f"AKIA{n:016d}", True, NOW - timedelta(days=200)), decisions.Key(f"AKIB{n:016d}", False, NOW - timedelta(days=300), NOW - timedelta(days=100))]
    decision = decisions.decide(name(n), keys, decisions.Secret(True, keys[0].id), NOW, settings().policy)
    decision.grant_consumer = True
    assert decision.rotate and decision.delete_key_id
    item = report.plan_item(decision, "iam-key-rotation/" + name(n), [k.id for k in keys])
    return {"account": ACCOUNT, "role": ROLE, **item, "oldest": decisions.format_time(NOW), "owner": ("o" * 200) + "@platform.example.com"}


def worst_result(n: int) -> dict:
    return {"user": name(n), "account": ACCOUNT, "status": "failed", "error": "Iam.ServiceFailureException", "cause": "c" * 1000,
            "cleanup": [{"undeletedKeyId": f"AKIC{n:016d}"}], "storedKeyId": f"AKID{n:016d}"}


def size(document) -> int:
    return len(json.dumps(document).encode())


def test_a_batch_to_plan_fits_however_large_its_users():
    batches = run_records.in_batches([worst_user_to_plan(n) for n in range(1_000)])
    largest = max(size({"batch": 0, "users": b, "time": "t" * 20, "recordedAt": "t" * 20, "force": False}) for b in batches)
    print(f"{len(batches)} batches for 1,000 worst users; the largest {largest} bytes")
    assert largest < LIMIT


def test_a_batch_plan_and_an_act_batch_and_its_results_fit():
    users = run_records.in_batches([worst_item(n) for n in range(1_000)], run_records.MAX_ACT_BATCH_USERS)
    assert max(size({"batch": 0, "users": b, "parallelUsers": 40}) for b in users) < LIMIT  # an ActBatch
    batch = [worst_user_to_plan(n) for n in range(run_records.MAX_BATCH_USERS)]
    plan = {"batch": 0, "managed": 100, "unchanged": 0, "actions": [worst_item(n) for n in range(len(batch))],
            "blocked": [], "attention": [], "unreadable": [], "notices": []}
    results = {"batch": 0, "results": [worst_result(n) for n in range(run_records.MAX_ACT_BATCH_USERS)]}
    print(f"a batch's plan {size(plan)} bytes, its results {size(results)} bytes")
    assert size(plan) < LIMIT and size(results) < LIMIT


def test_the_report_that_the_state_machine_carries_fits_at_a_hundred_thousand_users():
    plan = {
        "time": decisions.format_time(NOW), "dryRun": False, "managedUsers": USERS, "unchangedUsers": 0, "deferredUsers": 0,
        "actions": [worst_item(n) for n in range(USERS // 4)],
        "blocked": [{"user": name(n), "reason": "x" * 330, "owner": "o@example.com"} for n in range(5_000)],
        "attention": [{"user": name(n), "reason": "w" * 500, "owner": "o@example.com"} for n in range(5_000)],
        "unreadable": [{"user": name(n), "reason": "y" * 200} for n in range(5_000)],
        "notices": [{"user": name(n), "notices": ["z" * 200, "z" * 200], "owner": f"o{n}@example.com"} for n in range(5_000)],
    }
    results = [worst_result(n) for n in range(USERS // 4)]
    built, everyone, owners = report.build(plan, results, None, settings(), where="s3://bucket/runs/x/report.json")
    print(f"report {size(built)} bytes for {len(everyone)} users in it; {len(owners)} owner emails")
    assert size({"report": built}) < LIMIT
    assert len(built["failureCause"]) <= report.MAX_CAUSE_CHARS
    assert built["summary"]["failed"] == USERS // 4 + 5_000 and built["summary"]["blocked"] == 5_000
    assert built["summary"]["moreUsers"] == len(everyone) - report.MAX_SUMMARY_USERS  # the rest are in the bucket
    assert "the full report, every user, is s3://bucket/runs/x/report.json" in built["body"]
    assert len(everyone) == USERS // 4 + 15_000 and max(len(o["body"]) for o in owners) <= report.MAX_OWNER_EMAIL_CHARS + 200


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
    with pytest.raises(plan_run.RunInProgress, match="run scheduled .* is still running"):
        plan_run.ensure_single_flight(earlier, "sm", ARN + "mine", decisions.format_time(NOW))


def test_the_earliest_run_goes_on_and_a_tie_goes_to_the_smaller_name():
    both = Executions((ARN + "b", NOW), (ARN + "a", NOW))
    plan_run.ensure_single_flight(both, "sm", ARN + "a", decisions.format_time(NOW))  # goes on
    with pytest.raises(plan_run.RunInProgress):
        plan_run.ensure_single_flight(both, "sm", ARN + "b", decisions.format_time(NOW))
    later = Executions((ARN + "later", NOW + timedelta(seconds=1)))
    plan_run.ensure_single_flight(later, "sm", ARN + "mine", decisions.format_time(NOW))  # a later run does not stop it


# --- notices, owners, the time bound ---------------------------------------------------------------------------


def key(days, active=True, inactive_days=None):
    return decisions.Key(f"AKIA{days:016d}", active, NOW - timedelta(days=days), NOW - timedelta(days=inactive_days) if inactive_days else None)


@pytest.mark.parametrize("age, notice", [(72, None), (73, "will be rotated on 2026-03-08 (in 7 days)"), (79, "in 1 day"), (80, None)])
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
    assert reading.owner_of({"KeyOwnerEmail": tag}, "KeyOwnerEmail", domains) == owner


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
    assert reading.needs_grant(Policies(policy), "s", CONSUMER) is needed


@pytest.mark.parametrize("subject, expected", [
    ("IAM access key rotation 2026-01-05T06:00:00Z: 1 rotated", "IAM access key rotation 2026-01-05T06:00:00Z: 1 rotated"),
    ("x" * 101, "x" * 97 + "..."),
    ("line\nbreak é", "line?break ?"),
])
def test_the_topic_subject_is_what_sns_accepts(subject, expected):
    # SNS refuses a subject over 100 characters, or with a line break or a character outside printable ASCII.
    assert report._topic_subject(subject) == expected


def test_lifecycle_events_name_every_change_and_only_key_ids():
    plan = {
        "time": "2026-01-05T06:00:00Z",
        "actions": [
            {"user": "gone", "secretName": "p/gone", "outcome": "retire", "reason": "r1", "deleteKeyId": "AKIADELETED"},
            {"user": "made-room", "secretName": "p/made-room", "outcome": "rotate", "reason": "r2", "rotate": True,
             "deleteKeyId": "AKIAROOM", "previousKeyId": "AKIAPREV"},
            {"user": "broken", "secretName": "p/broken", "outcome": "rotate", "reason": "r3", "rotate": True},
        ],
        "unreadable": [{"user": "unread", "reason": "r4"}],
        "overdue": [{"user": "late", "reason": "r5"}],
        "attention": [{"user": "edited", "reason": "r6"}],
    }
    results = [
        {"user": "gone", "status": "succeeded"},
        {"user": "made-room", "status": "succeeded", "newKeyId": "AKIANEW",
         "stored": {"Arn": "arn:s", "Name": "p/made-room", "VersionId": "key-rotation-AKIANEW"}},
        {"user": "broken", "status": "failed", "error": "Iam.LimitExceededException", "cause": "..."},
    ]
    events = report.lifecycle_events(plan, results, "run-1", "123456789012")
    assert [(t, d["user"], d.get("keyId") or d.get("newKeyId") or d.get("error")) for t, d in events] == [
        ("IAM Access Key Deleted", "gone", "AKIADELETED"),
        ("IAM Access Key Deleted", "made-room", "AKIAROOM"),
        ("IAM Access Key Rotated", "made-room", "AKIANEW"),
        ("IAM Access Key Rotation Failed", "broken", "Iam.LimitExceededException"),
        ("IAM Access Key Rotation Needs Attention", "edited", None),
        ("IAM Access Key Overdue", "late", None),
        ("IAM Access Key Rotation Failed", "unread", None),
    ]
    assert all(d["schemaVersion"] == "1" and d["run"] == "run-1" and d["account"] == "123456789012" for _, d in events)
    assert report.lifecycle_events({**plan, "dryRun": True}, results, "run-1", "123456789012") == []


@pytest.mark.parametrize("length, shown", [
    (report.MAX_DETAIL_CHARS, "whole"),
    (report.MAX_DETAIL_CHARS + 1, "cut"),
])
def test_a_detail_past_its_maximum_is_cut_and_says_so(length, shown):
    detail = ("word " * length)[:length]

    result = report.cut(detail)

    assert len(result) <= report.MAX_DETAIL_CHARS
    if shown == "whole":
        assert result == detail
    else:
        assert result.endswith("...") and detail.startswith(result[:-3])
