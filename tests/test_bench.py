"""make bench on small accounts: its figures are produced, agree with the fleet it seeded and with each other, and a
run past a limit fails the benchmark. Not a timed test: times are checked only for being there."""

import io
import json
from contextlib import redirect_stdout

import pytest

from bench import fleet, measure
from bench import run as bench
from emulator import account, history
from emulator.runner import Emulator

import decisions

FLEET, FIRST_INSTALL = 40, 12
# Its module fixture runs the benchmark once for every test here (make test keeps a module on one worker).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results():
    out = io.StringIO()
    with redirect_stdout(out):
        status = bench.main(["--fleets", str(FLEET), "--first-install", str(FIRST_INSTALL), "--json"])
    found = json.loads(out.getvalue())
    assert status == 0, [r["problems"] for r in found]
    return found


def test_the_run_did_what_the_seeded_fleet_called_for(results):
    steady = results[0]
    summary, expected = steady["figures"]["summary"], steady["expected"]
    assert expected["rotate"] >= 1 and expected["retire"] >= 2  # the first two users are always due to retire
    assert summary["managedUsers"] == FLEET and summary["deferredUsers"] == 0
    assert (summary["rotated"], summary["retired"], summary["blocked"]) == (expected["rotate"], expected["retire"], expected.get("blocked", 0))
    users = steady["figures"]["users_by_class"]
    assert sum(users.values()) == FLEET
    assert users["rotate"] == expected["rotate"] and users["deactivate"] + users["delete"] == expected["retire"]


def test_a_first_install_rotates_every_user_in_one_run(results):
    first = results[1]["figures"]
    assert first["summary"]["rotated"] == FIRST_INSTALL and first["summary"]["deferredUsers"] == 0
    assert first["calls_by_operation"]["secretsmanager:CreateSecret"] == FIRST_INSTALL
    assert first["users_by_class"] == {"rotate": FIRST_INSTALL, "untouched": 0}


def test_per_user_figures_meet_their_targets(results):
    f = results[0]["figures"]
    assert 0 < f["states_per_user"]["rotate"] <= 8
    assert f["calls_per_user"]["rotate"] >= 3  # create the key, store it, record the secret on the user
    # An untouched user the credential report shows needs nothing costs no call of its own; one in its install or
    # recovery window has its keys read (ListAccessKeys). The bulk reads and records are shared by all of them.
    untouched = f["users_by_class"]["untouched"]
    assert len(acted := {k: v for k, v in f["users_by_class"].items() if k != "untouched"}) and untouched
    assert sum(acted.values()) < f["calls_by_phase"]["planning"]["iam:ListAccessKeys"] < f["managed_users"]
    assert 0 < f["own_calls_per_untouched_user"] < 1 < f["calls_per_untouched_user"]  # a small fleet: the bulk reads weigh
    assert f["calls_by_operation"]["iam:GetCredentialReport"] == 1


def test_limits_are_measured_across_every_history(results):
    f = results[0]["figures"]
    assert 0 < f["parent_events"] < 100 and f["children"] >= 2  # a batch planned, a batch acted on
    assert f["parent_events"] < f["largest_child_events"] < measure.CHILD_EVENT_LIMIT
    assert 0 < f["largest_payload"]["bytes"] < measure.PAYLOAD_LIMIT_BYTES and f["largest_payload"]["where"]
    parts = f["states_by_part"]
    assert sum(parts.values()) == f["states_entered"] and parts["acting"] > parts["planning"] > 0
    assert sum(f["calls_by_operation"].values()) == sum(n for ops in f["calls_by_phase"].values() for n in ops.values())
    assert f["invariant_violations"] == [] and f["leaks"] == 0


def test_projection_adds_up_and_is_bounded_by_iams_rate(results):
    f, p = results[0]["figures"], results[0]["projection"]
    assert p["run_usd"] == pytest.approx(sum(p["usd_by_service"].values())) and p["run_usd"] > 0
    assert p["month_usd"] == pytest.approx(sum(p["month_usd_by_part"].values())) and p["month_usd"] > 0
    iam_planning = sum(n for op, n in f["calls_by_phase"]["planning"].items() if op.startswith("iam:"))
    assert p["seconds_planning"] >= iam_planning / bench.projection.Assumptions().iam_rate
    assert p["seconds_total"] >= p["seconds_planning"] + p["seconds_acting"]
    assert p["secrets_storage_month_usd"] == pytest.approx(FLEET * 0.40)


def test_a_run_past_a_limit_fails_the_benchmark(monkeypatch):
    monkeypatch.setattr(bench, "PARENT_EVENT_LIMIT", 10)
    out = io.StringIO()
    with redirect_stdout(out):
        assert bench.main(["--fleets", "5", "--first-install", "0"]) == 1
    assert "PROBLEM (5 users): the run's history has" in out.getvalue()


def test_seeding_through_the_backends_matches_the_fixture_format():
    """The fleet seeded straight into moto reads back as account.seed would have made it."""
    fixture = {"start": bench.START, "parameters": {"SenderEmail": bench.SENDER, "NotificationEmails": bench.RECIPIENT}}
    with Emulator(fixture) as aws:
        params = aws.deployment.parameters
        policy = decisions.Policy.from_days(90, 7, 7)
        specs = fleet.make_fleet(12, policy, seed=3)
        fleet.seed_fleet(specs, aws.clock.now, params, policy)
        for spec in specs:
            keys = sorted(account.keys_of(spec.name), key=lambda k: k.created)
            current = next(k for k in keys if aws.clock.now - k.created.astimezone(aws.clock.now.tzinfo) == spec.age)
            assert len(keys) == 1 + (spec.previous is not None) + spec.extra_active
            stages = {s: v.key_id for v in account.secret_versions(aws.secret_prefix + spec.name) for s in v.stages}
            if spec.in_secret:
                assert stages["AWSCURRENT"] == current.id
                assert account.secret_value(aws.secret_prefix + spec.name)["AccessKeyId"] == current.id
                assert account.tags_of(spec.name)[decisions.SECRET_TAG] == aws.secret_prefix + spec.name
            else:
                assert stages == {}
            if spec.previous:
                previous = keys[0]
                assert previous.status == spec.previous and stages["AWSPREVIOUS"] == previous.id
                tags = account.tags_of(spec.name)
                assert (decisions.inactive_since_tag(previous.id) in tags) == (spec.previous == "Inactive")
        keys = account.account_keys()
        for name, state in account.workflow_secrets(aws.secret_prefix).items():
            assert account.secret_holds_a_working_key(name, state, keys, aws.secret_prefix), name
            assert account.secret_value_matches(name, aws.secret_prefix), name


def test_iterations_follow_a_worker_into_its_next_iteration_and_keep_nested_maps():
    """Inline Map workers start their next iteration from the last event of the previous one; a Map nested in an
    iteration (Delete unstored keys) stays that iteration's."""

    def entered(i, prev, name):
        return {"id": i, "previousEventId": prev, "type": "PassStateEntered", "stateEnteredEventDetails": {"name": name}}

    def map_event(i, prev, kind, index, name="Act"):
        return {"id": i, "previousEventId": prev, "type": kind, f"{kind[0].lower()}{kind[1:]}EventDetails": {"name": name, "index": index}}

    events = [
        entered(1, 0, "Plan"),
        {"id": 2, "previousEventId": 1, "type": "MapStateStarted"},
        map_event(3, 2, "MapIterationStarted", 0),
        entered(4, 3, "Step"),
        map_event(5, 4, "MapIterationSucceeded", 0),
        map_event(6, 5, "MapIterationStarted", 1),  # the worker reused: its chain runs through iteration 0's end
        entered(7, 6, "Step"),
        map_event(8, 7, "MapIterationStarted", 0, name="Inner"),  # a nested Map stays iteration 1's
        entered(9, 8, "Inner step"),
        map_event(10, 9, "MapIterationSucceeded", 0, name="Inner"),
        entered(11, 10, "Step 2"),
        map_event(12, 11, "MapIterationSucceeded", 1),
        entered(13, 12, "Report"),
    ]
    found = history.iterations(events)
    assert {i: history.states_entered(e) for i, e in found.items()} == {0: ["Step"], 1: ["Step", "Inner step", "Step 2"]}


def test_the_organization_bench_runs_a_hub_over_member_accounts_and_checks_each(capsys):
    from bench import organization

    exit_code = organization.main(["--accounts", "2", "--users", "3"])

    printed = capsys.readouterr().out
    assert exit_code == 0, printed
    assert "Accounts (members and the hub's)                       3" in printed
    assert "Managed users                                          6" in printed
    assert "Invariants held in every account, no secret published  yes" in printed
    assert "sts:AssumeRole" in printed and "organizations:ListAccounts" in printed
