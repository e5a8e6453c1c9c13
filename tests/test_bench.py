"""The benchmark (bench/run.py) on a tiny fleet: its figures are produced, add up, and agree with the fleet it
seeded. Not a timed test: the sizes and times it prints are checked only for being there and consistent."""

import io
import json
from contextlib import redirect_stdout

import pytest

from bench import run as bench
from emulator import account
from emulator.runner import Emulator

FLEET = 20


@pytest.fixture(scope="module")
def report():
    out = io.StringIO()
    with redirect_stdout(out):
        assert bench.main(["--fleets", str(FLEET), "--json"]) == 0
    (result,) = json.loads(out.getvalue())
    return result


def test_the_run_did_what_the_seeded_fleet_called_for(report):
    run = report["run"]
    assert run["status"] == "SUCCEEDED"
    expected = run["expected_counts"]
    assert expected.get("rotate", 0) >= 1 and expected.get("retire", 0) >= 2  # the first two users are due to retire
    summary = run["summary_counts"]
    assert summary["managedUsers"] == FLEET
    assert summary["rotated"] == expected.get("rotate", 0)
    assert summary["retired"] == expected.get("retire", 0)
    assert summary["blocked"] == expected.get("blocked", 0)
    assert run["acted_users"] == expected.get("rotate", 0) + expected.get("retire", 0)
    assert sum(c["users"] for c in run["classes"].values()) == FLEET


def test_every_state_event_and_call_is_attributed(report):
    run = report["run"]
    classes = run["classes"]
    assert run["states_entered"] == run["run_states"] + sum(c["users"] * c["states_per_user"] for c in classes.values())
    assert run["api_calls"] == sum(run["api_calls_by_operation"].values())
    per_user = sum(c["users"] * c["calls_per_user"] for c in classes.values())
    assert run["api_calls"] == pytest.approx(per_user + sum(run["run_calls_by_operation"].values()))
    assert 0 < run["run_states"] < 20
    assert run["run_states"] + sum(c["users"] * c["history_events_per_user"] for c in classes.values()) < run["history_events"]


def test_per_user_figures_are_plausible(report):
    classes = report["run"]["classes"]
    rotated, untouched = classes["rotated"], classes["untouched"]
    assert untouched["states_per_user"] == 0 and untouched["calls_per_user"] >= 1
    assert untouched["plan_calls_per_user"] == untouched["calls_per_user"]  # only read, by the plan
    assert rotated["states_per_user"] > 3
    assert rotated["calls_by_operation_per_user"]["iam:CreateAccessKey"] == 1
    stores = {op: n for op, n in rotated["calls_by_operation_per_user"].items() if op in ("secretsmanager:PutSecretValue", "secretsmanager:CreateSecret")}
    assert sum(stores.values()) >= 1
    assert rotated["calls_per_user"] > untouched["calls_per_user"]
    assert "iam:DeleteAccessKey" in classes["retired (deleted)"]["calls_by_operation_per_user"]
    assert "iam:UpdateAccessKey" in classes["retired (deactivated)"]["calls_by_operation_per_user"]


def test_limits_and_costs_are_reported(report):
    run = report["run"]
    assert 1000 < run["largest_payload"] < bench.PAYLOAD_LIMIT_BYTES
    assert run["largest_payload_at"]
    assert 1000 < run["largest_lambda_payload"] < bench.PAYLOAD_LIMIT_BYTES and run["largest_lambda_payload_at"]
    assert run["seconds_run"] > 0 and run["seconds_planning"] > 0 and run["seconds_planning"] < run["seconds_run"]
    plan = [f for f in run["lambdas"] if f["phase"] == "plan"]
    assert len(plan) == 1 and plan[0]["calls"] >= FLEET and plan[0]["memory_mb"] >= 128
    cost = report["cost"]
    assert cost["per_1000_rotations"]["missing_steps"] == []
    assert cost["per_1000_rotations"]["transitions"] == pytest.approx(
        1000 * sum(run["classes"][c]["states_per_user"] for c in ("rotated", "retired (deactivated)", "retired (deleted)"))
    )
    month = cost["per_month"]
    assert 0 < month["step_functions_usd"] < 100 and 0 < month["lambda_usd"] < month["step_functions_usd"]
    assert month["rotations_per_day"] == pytest.approx(10_000 / 90)


def test_the_original_design_runs_beside_ours(report):
    ours, original = report["comparison"].values()
    assert original["status"] == "SUCCEEDED" and ours["status"] == "SUCCEEDED"
    assert original["states_entered"] == 5 and original["lambda_invocations"] == 0
    assert original["api_calls_by_operation"] == {
        "iam:CreateAccessKey": 1, "iam:DeleteAccessKey": 1, "iam:ListAccessKeys": 1,
        "secretsmanager:UpdateSecret": 1, "ses:SendEmail": 1,
    }
    assert ours["api_calls_by_operation"]["iam:CreateAccessKey"] == 1
    assert "iam:DeleteAccessKey" not in ours["api_calls_by_operation"]
    assert ours["keys_after"] == ["Active", "Active"]  # the previous key stays Active for the install window
    assert original["keys_after"] == ["Active"]  # the original deleted it before storing the new one
    assert ours["states_entered"] > original["states_entered"]


def test_seeding_through_the_backends_matches_the_fixture_format():
    """The fleet seeded straight into moto reads back as account.seed would have made it."""
    fixture = {"start": bench.START, "parameters": dict(bench.BASE_PARAMETERS), "users": []}
    with Emulator(fixture) as aws:
        params = aws.deployment.parameters
        policy = bench.decisions.Policy.from_days(90, 7, 7)
        specs = bench.make_fleet(12, policy, seed=3)
        bench.seed_fleet(specs, aws.clock.now, params, policy)
        for spec in specs:
            keys = sorted(account.keys_of(spec.name), key=lambda k: k.created)
            current = next(k for k in keys if aws.clock.now - k.created.astimezone(aws.clock.now.tzinfo) == spec.age)
            assert len(keys) == 1 + (spec.previous is not None) + spec.extra_active
            stages = {s: v.key_id for v in account.secret_versions(aws.secret_prefix + spec.name) for s in v.stages}
            if spec.in_secret:
                assert stages["AWSCURRENT"] == current.id
                assert account.secret_value(aws.secret_prefix + spec.name)["AccessKeyId"] == current.id
            else:
                assert stages == {}
            if spec.previous:
                previous = keys[0]
                assert previous.status == spec.previous and stages["AWSPREVIOUS"] == previous.id
                tags = account.tags_of(spec.name)
                assert (bench.decisions.inactive_since_tag(previous.id) in tags) == (spec.previous == "Inactive")
        keys = account.account_keys()
        for name, state in account.workflow_secrets(aws.secret_prefix).items():
            assert account.secret_holds_a_working_key(name, state, keys, aws.secret_prefix), name
            assert account.secret_value_matches(name, aws.secret_prefix), name


def test_history_attribution_follows_a_worker_into_its_next_iteration():
    """Inline Map workers start their next iteration from the last event of the previous one."""

    def entered(i, prev, name, user=None):
        return {"id": i, "previousEventId": prev, "type": "PassStateEntered",
                "stateEnteredEventDetails": {"name": name, "input": json.dumps({"user": user} if user else {})}}

    def map_event(i, prev, kind, index, name="Act"):
        return {"id": i, "previousEventId": prev, "type": kind, f"{kind[0].lower()}{kind[1:]}EventDetails": {"name": name, "index": index}}

    events = [
        entered(1, 0, "Plan"),
        {"id": 2, "previousEventId": 1, "type": "MapStateStarted"},
        map_event(3, 2, "MapIterationStarted", 0),
        entered(4, 3, "Step", "alice"),
        map_event(5, 4, "MapIterationStarted", 1),  # the worker reused: its chain runs through alice's events
        entered(6, 5, "Step", "bob"),
        map_event(7, 6, "MapIterationStarted", 0, name="Inner"),  # a nested Map stays bob's
        entered(8, 7, "Inner step", "bob"),
        map_event(9, 8, "MapIterationSucceeded", 0, name="Inner"),
        entered(10, 9, "Step 2"),
        map_event(11, 4, "MapIterationSucceeded", 0),
        map_event(12, 10, "MapIterationSucceeded", 1),
        entered(13, 12, "Report"),
    ]
    history = bench.read_history(events)
    assert history.user_states == {"alice": 1, "bob": 3}
    assert history.run_states == 2 and history.states_entered == 6
