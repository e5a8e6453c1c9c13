"""How much a run does and who may read what it stores, on the real template, state machine and Lambdas in the
emulator: a run acts on at most MaxUsersPerRun users, the oldest keys first, and ParallelUsers caps the Map;
ConsumerPrincipalArn gets exactly read access to each rotated secret, and new secrets use the stack's KMS key;
the plan of a large account stays far below Step Functions' 256 KiB payload limit.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans every run's output,
cause, emails and Lambda payloads for secret access keys after each test.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import boto3
import decisions
import pytest
from safety_helpers import flat, moto_iam_backend
from test_rotation_workflow import (  # noqa: F401 (emulate is a fixture)
    START,
    account_with,
    emulate,
    key,
    keys,
    outcomes,
    staged,
)

from emulator import account
from emulator.faults import in_state

STACK_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321"
CONSUMER = "arn:aws:iam::123456789012:role/app"


# --- helpers -------------------------------------------------------------------------------------------------


def resource_policy(secret_name):
    response = boto3.client("secretsmanager").get_resource_policy(SecretId=secret_name)
    return json.loads(response["ResourcePolicy"]) if response.get("ResourcePolicy") else None


# --- the per-run cap and the Map's concurrency ----------------------------------------------------------------


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


# --- consumer access and encryption -------------------------------------------------------------------------


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


# --- the plan of a large account stays small -----------------------------------------------------------------


def test_a_dry_run_over_600_due_users_queues_the_250_oldest_in_batches_of_50(emulate):
    aws = emulate(account_with(), MaxUsersPerRun="250")
    iam_backend = moto_iam_backend()
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
