"""The pre-flight Lambda, fed the events/ fixtures, invoked through the Lambda API on the emulated account.

The function is deployed from the real template (its environment is the template's), on the demo account at
the fixtures' time (2026-01-05T06:00:00Z).
"""

import json
from unittest import mock

import pytest

from emulator import stack
from emulator.faults import failing
from emulator.runner import Emulator

DEMO = json.loads((stack.ROOT / "fixtures" / "demo-account.json").read_text())
EVENTS = stack.ROOT / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def aws():
    with Emulator(DEMO) as emulated:
        yield emulated


def by_user(plan: dict) -> dict:
    return {a["user"]: a for a in plan["actions"]}


def test_scheduled_plan_acts_only_on_managed_users_that_need_it(aws):
    plan, error = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert error is None
    assert plan["time"] == "2026-01-05T06:00:00Z"
    assert (plan["managedUsers"], plan["unchangedUsers"]) == (6, 3)
    actions = by_user(plan)
    assert set(actions) == {"ci-deployer", "data-sync"}
    assert actions["ci-deployer"]["outcome"] == "rotate"
    assert actions["ci-deployer"]["secretName"] == "iam-key-rotation/ci-deployer"
    assert actions["data-sync"]["outcome"] == "record"  # the Inactive key's recovery window starts now
    assert [b["user"] for b in plan["blocked"]] == ["legacy-integration"]
    assert "alice" not in json.dumps(plan)  # out of scope: not even listed


def test_on_demand_plan_rotates_the_named_user_at_the_execution_start_time(aws):
    plan, error = aws.invoke_preflight(event("preflight-plan-on-demand.json"))

    assert error is None
    assert plan["time"] == "2026-01-05T06:00:02Z"
    assert plan["scheduled"] is False
    assert plan["managedUsers"] == 1
    assert [(a["user"], a["outcome"], a.get("rotate")) for a in plan["actions"]] == [("ci-deployer", "rotate", True)]


def test_dry_run_plan_is_marked_so_the_workflow_changes_nothing(aws):
    plan, _ = aws.invoke_preflight(event("preflight-plan-dry-run.json"))

    assert plan["dryRun"] is True
    assert "ci-deployer" in by_user(plan)


def test_invalid_input_is_rejected_naming_every_problem(aws):
    payload, error = aws.invoke_preflight(event("preflight-plan-invalid-input.json"))

    assert error == "Unhandled"
    assert payload["errorType"] == "InvalidInput"
    for problem in ("unknown field(s) color", '"time" must be an ISO-8601', '"force" rotates named users only'):
        assert problem in payload["errorMessage"]


def test_unknown_and_out_of_scope_users_are_rejected_before_anything_changes(aws):
    payload, error = aws.invoke_preflight({"phase": "plan", "input": {"time": "2026-01-05T06:00:00Z", "users": ["nobody", "alice"]}})

    assert payload["errorType"] == "InvalidInput"
    assert "no IAM user is named nobody" in payload["errorMessage"]
    assert "user alice is not managed by this stack (it manages users under path / tagged KeyRotation=enabled)" in payload["errorMessage"]


def test_report_event_builds_the_summary_and_an_email_without_secrets(aws):
    report, error = aws.invoke_preflight(event("preflight-report.json"))

    assert error is None
    assert report["failed"] is False
    assert report["notify"] is True
    assert report["recipients"] == ["platform-team@example.com"]
    assert report["subject"] == "IAM access key rotation 2026-01-05T06:00:00Z: 1 rotated, 1 blocked"
    assert [(u["user"], u["outcome"]) for u in report["summary"]["users"]] == [
        ("ci-deployer", "rotated"),
        ("legacy-integration", "blocked"),
    ]
    assert "AKIAI44QH8DHBEXAMPLE" in report["body"]


def test_plan_never_reads_a_secret_value(aws):
    from moto.secretsmanager.models import SecretsManagerBackend

    with mock.patch.object(SecretsManagerBackend, "get_secret_value", side_effect=AssertionError("secret value read")):
        plan, error = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert error is None, plan
    secrets = aws.issued_secrets
    assert not any(secret in json.dumps(plan) for secret in secrets)


def test_every_managed_user_is_found_across_list_users_pages():
    # The emulator pages ListUsers at 100 as AWS does; 230 users need three pages.
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "users": [{"name": f"svc-{i:03d}", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 10}]} for i in range(230)],
    }
    with Emulator(fixture) as aws:
        plan, error = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert error is None
    assert plan["managedUsers"] == 230


def test_a_user_tag_outside_the_scope_parameters_is_not_managed():
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "users": [
            {"name": "in-path", "path": "/services/", "keys": [{"ageDays": 95}]},
            {"name": "elsewhere", "path": "/humans/", "keys": [{"ageDays": 95}]},
        ],
    }
    with Emulator(fixture, {"UserPath": "/services/", "UserTagKey": ""}) as aws:
        plan, _ = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert plan["managedUsers"] == 1
    assert list(by_user(plan)) == ["in-path"]


def test_a_name_outside_the_readable_path_is_rejected_as_unmanaged(aws):
    # On AWS the function may read only users under UserPath: any other name is AccessDenied, existing or not.
    with failing("iam", "get_user", "AccessDenied", when=lambda user_name: user_name == "contractor"):
        payload, _ = aws.invoke_preflight({"phase": "plan", "input": {"time": "2026-01-05T06:00:00Z", "users": ["contractor"]}})

    assert payload["errorType"] == "InvalidInput"
    assert "no user named contractor under the managed path /" in payload["errorMessage"]


def test_contradictory_windows_are_refused_before_anything_is_read():
    with Emulator(DEMO, {"MaxKeyAgeDays": "14"}) as aws:
        payload, error = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert (error, payload["errorType"]) == ("Unhandled", "InvalidConfiguration")
    assert "MaxKeyAgeDays (14) must be greater than InstallWindowDays + RecoveryWindowDays (7 + 7)" in payload["errorMessage"]


def test_a_user_s_tags_are_read_once_even_when_only_its_owner_tag_needs_them():
    # No scope tag: tags are read for a user with keys (inactive-since tags), and the owner comes from that read.
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "parameters": {"UserTagKey": "", "SenderEmail": "rotation@example.com"},
        "users": [{"name": "app", "tags": {"KeyOwnerEmail": "dev@example.com"}, "keys": [{"ageDays": 95, "inSecret": True}]}],
    }
    from moto.iam.models import IAMBackend

    with Emulator(fixture) as aws, mock.patch.object(IAMBackend, "list_user_tags", autospec=True, side_effect=IAMBackend.list_user_tags) as reads:
        plan, error = aws.invoke_preflight(event("preflight-plan-scheduled.json"))

    assert error is None and by_user(plan)["app"]["owner"] == "dev@example.com"
    assert reads.call_count == 1
