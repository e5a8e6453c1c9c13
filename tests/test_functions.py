"""Each Task's function alone, fed the events/ fixtures (the shapes of contract.py), invoked through the Lambda API
on the emulated account: deployed from the real template with its own environment, on the demo account at the
fixtures' time (2026-01-05T06:00:00Z)."""

import json
from unittest import mock

import boto3
import pytest
import reading
import run_records

from emulator import account, stack
from emulator.runner import Emulator

DEMO = json.loads((stack.ROOT / "fixtures" / "demo-account.json").read_text())
EVENTS = stack.ROOT / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def aws():
    with Emulator(DEMO) as emulated:
        yield emulated


def users_to_plan(aws, run: dict) -> list[dict]:
    """Every user "Plan the run" wrote to the run bucket, from every batch."""
    body = boto3.client("s3").get_object(Bucket=run["bucket"], Key=run["usersToPlan"])["Body"].read()
    return [user for batch in json.loads(body) for user in batch["users"]]


# --- Plan the run ------------------------------------------------------------------------------------------------


def test_a_scheduled_run_plans_every_managed_user_in_batches_in_the_run_bucket(aws):
    run, error = aws.invoke("PlanRunFunction", event("plan-run-scheduled.json"))

    assert error is None, run
    assert (run["time"], run["recordedAt"], run["scheduled"], run["dryRun"]) == ("2026-01-05T06:00:00Z", "2026-01-05T06:00:02Z", True, False)
    assert (run["bucket"], run["folder"]) == (aws.deployment.bucket, "runs/scheduled/")
    assert (run["managedUsers"], run["batches"], run["parallelBatches"], run["parallelUsers"]) == (8, 1, 4, 5)
    planned = {u["user"]: u for u in users_to_plan(aws, run)}
    assert set(planned) == {
        "ci-deployer", "partner-api", "reporting-etl", "data-sync", "legacy-integration", "new-service", "billing-export", "vendor-sftp"
    }
    assert "alice" not in planned  # out of scope, and no secret of the workflow's: not even listed
    partner = planned["partner-api"]
    assert partner["tags"] == {"KeyOwnerEmail": "partner-team@example.com", "key-rotation:secret": "iam-key-rotation/partner-api"}
    assert partner["tagCount"] == 3  # the scope tag counts, though no decision reads it
    assert partner["secret"]["name"] == "iam-key-rotation/partner-api" and partner["secret"]["keyId"].startswith("AKIA")


def test_an_on_demand_run_plans_the_named_user_at_the_execution_start_time(aws):
    run, error = aws.invoke("PlanRunFunction", event("plan-run-on-demand.json"))

    assert error is None
    assert (run["time"], run["scheduled"], run["force"], run["managedUsers"]) == ("2026-01-05T06:00:02Z", False, True, 1)
    assert [u["user"] for u in users_to_plan(aws, run)] == ["ci-deployer"]


def test_a_dry_run_is_marked_so_the_workflow_changes_nothing(aws):
    run, _ = aws.invoke("PlanRunFunction", event("plan-run-dry-run.json"))
    assert run["dryRun"] is True


def test_invalid_input_is_rejected_naming_every_problem(aws):
    payload, error = aws.invoke("PlanRunFunction", event("plan-run-invalid-input.json"))

    assert (error, payload["errorType"]) == ("Unhandled", "InvalidInput")
    for problem in ("unknown field(s) color", '"time" must be an ISO-8601', '"force" rotates named users only'):
        assert problem in payload["errorMessage"]


def test_unknown_and_out_of_scope_users_are_rejected_before_anything_changes(aws):
    on_demand = {**event("plan-run-on-demand.json"), "input": {"time": "2026-01-05T06:00:00Z", "users": ["nobody", "alice"]}}
    payload, _ = aws.invoke("PlanRunFunction", on_demand)

    assert payload["errorType"] == "InvalidInput"
    assert "no IAM user is named nobody" in payload["errorMessage"]
    assert "user alice is not managed by this stack (it manages users under path / tagged KeyRotation=enabled)" in payload["errorMessage"]


def test_contradictory_windows_are_refused_before_anything_is_read():
    with Emulator(DEMO, {"MaxKeyAgeDays": "14"}) as aws:
        payload, error = aws.invoke("PlanRunFunction", event("plan-run-scheduled.json"))

    assert (error, payload["errorType"]) == ("Unhandled", "InvalidConfiguration")
    assert "MaxKeyAgeDays (14) must be at least 25 with InstallWindowDays 7 and RecoveryWindowDays 7" in payload["errorMessage"]


def test_every_user_is_read_across_pages_and_in_bulk():
    # IAM pages account details; with a page of 100 (as if 1000 were 100), 230 users need three calls, and no
    # user's tags are read one by one.
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "users": [{"name": f"svc-{i:03d}", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 10}]} for i in range(230)],
    }
    from moto.iam.models import IAMBackend

    with Emulator(fixture) as aws, mock.patch.object(reading, "USERS_PER_PAGE", 100), mock.patch.object(
        IAMBackend, "list_user_tags", side_effect=AssertionError("tags read one user at a time")
    ), mock.patch.object(IAMBackend, "get_account_authorization_details", autospec=True, side_effect=IAMBackend.get_account_authorization_details) as reads:
        run, error = aws.invoke("PlanRunFunction", event("plan-run-scheduled.json"))

    assert error is None, run
    assert (run["managedUsers"], run["batches"], reads.call_count) == (230, 3, 3)


def test_users_are_batched_at_a_hundred(aws):
    assert [len(b) for b in run_records.in_batches(list(range(250)))] == [100, 100, 50]
    assert [len(b) for b in run_records.in_batches(["x" * 2000] * 100)] == [49, 49, 2]  # and at about 96 KiB


def test_a_user_outside_the_scope_parameters_is_not_planned():
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "users": [
            {"name": "in-path", "path": "/services/", "keys": [{"ageDays": 95}]},
            {"name": "elsewhere", "path": "/humans/", "keys": [{"ageDays": 95}]},
        ],
    }
    with Emulator(fixture, {"UserPath": "/services/", "UserTagKey": ""}) as aws:
        run, _ = aws.invoke("PlanRunFunction", event("plan-run-scheduled.json"))
        assert [u["user"] for u in users_to_plan(aws, run)] == ["in-path"]


# --- Plan a batch of users ---------------------------------------------------------------------------------------


def test_a_batch_is_planned_from_the_users_keys(aws):
    plan, error = aws.invoke("PlanBatchFunction", event("plan-batch.json"))

    assert error is None, plan
    assert (plan["batch"], plan["managed"], plan["unchanged"], plan["actions"]) == (0, 2, 1, [])
    assert [b["user"] for b in plan["blocked"]] == ["legacy-integration"]  # due, two Active keys
    (gone,) = plan["attention"]  # a deleted user whose secret the workflow wrote
    assert gone["user"] == "retired-service" and "aws secretsmanager delete-secret --secret-id iam-key-rotation/retired-service" in gone["reason"]


def test_the_planning_functions_never_read_a_secret_value(aws):
    from moto.secretsmanager.models import SecretsManagerBackend

    with mock.patch.object(SecretsManagerBackend, "get_secret_value", side_effect=AssertionError("secret value read")):
        run, error = aws.invoke("PlanRunFunction", event("plan-run-scheduled.json"))
        (batch,) = json.loads(boto3.client("s3").get_object(Bucket=run["bucket"], Key=run["usersToPlan"])["Body"].read())
        plan, batch_error = aws.invoke("PlanBatchFunction", batch)

    assert (error, batch_error) == (None, None), (run, plan)
    assert {a["user"] for a in plan["actions"]} == {"ci-deployer", "data-sync", "billing-export"}
    assert not any(secret in json.dumps([run, plan]) for secret in aws.issued_secrets)


# --- Check the key is still inactive ---------------------------------------------------------------------------


def test_the_key_status_is_read_by_key_id(aws):
    (inactive,) = [k for k in account.keys_of("data-sync") if k.status == "Inactive"]
    status, error = aws.invoke("KeyStatusFunction", {**event("key-status.json"), "keyId": inactive.id})
    assert (error, status) == (None, {"status": "Inactive"})
    gone, _ = aws.invoke("KeyStatusFunction", event("key-status.json"))
    assert gone == {"status": "Missing"}
