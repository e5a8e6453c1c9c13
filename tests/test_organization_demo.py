"""The organization demo and its fixture: what `make run` shows after the single-account demo (`make
run-organization` alone), a fixture checked before anything runs, and when the emulator counts a FAILED run as
the fixture means it (only the account it gives no member stack failed it)."""

import json

from test_organization import THREE_MEMBERS
from test_rotation_workflow import emulate  # noqa: F401  emulate, a fixture: every run checked for the invariants and leaks


def test_the_emulator_counts_a_run_as_meant_only_when_the_account_without_the_member_stack_alone_failed_it(emulate):
    from emulator.commands import _failed_as_the_fixture_means
    from emulator.faults import about_user, failing

    aws = emulate(THREE_MEMBERS)
    assert aws.accounts_left_without_the_member_stack == {aws.member_accounts["sandbox"]}
    assert _failed_as_the_fixture_means(aws, aws.scheduled_run())  # sandbox alone failed it

    aws.advance(1)
    with failing("iam", "list_access_keys", "ServiceFailure", when=about_user("ci-deployer")):
        run = aws.scheduled_run()  # sandbox, and the users rotated yesterday, whose keys could not be read
    assert run.status == "FAILED" and not _failed_as_the_fixture_means(aws, run)


def test_an_organization_fixture_is_checked_before_anything_runs():
    from emulator.fixture import fixture_problems

    problems = fixture_problems({
        "organization": {"hubMemberStack": "yes", "accounts": [
            {"name": "ok", "users": []},
            {"name": "ok", "memberStack": 1, "status": "GONE", "colour": "red", "users": [{"name": "u", "keys": [{}, {}, {}]}]},
        ]},
    })
    assert problems == [
        "organization.hubMemberStack must be true or false",
        "organization.accounts[1]: a second account named ok",
        "organization.accounts[1] has unknown field(s) colour; allowed are memberStack, name, status, users",
        "organization.accounts[1].memberStack must be true or false",
        "organization.accounts[1].status 'GONE' must be ACTIVE or SUSPENDED",
        "organization.accounts[1].users[0] (u).keys must be a list of at most 2 keys (IAM's limit)",
    ]


def test_the_organization_demo_runs_offline_and_reports_the_account_without_the_member_stack(capsys):
    from emulator import cli

    exit_code = cli.main(["--account", "fixtures/demo-organization.json", "--days", "0,7", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert exit_code == 0 and document["invariantViolations"] == [] and document["leakedTexts"] == 0
    payments, sandbox = (document["accountAfter"]["memberAccounts"][n] for n in ("payments", "sandbox"))
    assert [r["status"] for r in document["runs"]] == ["FAILED", "FAILED"]  # sandbox has no member stack
    assert document["failedAsMeant"] == document["failedRuns"] == ["run-001", "run-002"]
    assert all(f"account(s) not reached: {sandbox['id']}" in r["cause"] for r in document["runs"])
    retired = document["runs"][1]["memberAccounts"]["payments"]["keys"]["ci-deployer"]
    assert sorted(retired["after"].values()) == ["Active", "Inactive"]  # day 7: the old key deactivated there
    assert {u["name"]: [k["status"] for k in u["keys"]] for u in sandbox["users"]} == {"experiments": ["Active"]}
    assert {u["name"]: len(u["keys"]) for u in payments["users"]} == {"ci-deployer": 2, "settlement-batch": 2}


def test_a_run_of_an_organization_fixture_that_fails_for_another_reason_fails_the_command(tmp_path, capsys):
    from emulator import cli

    (tmp_path / "event.json").write_text(json.dumps({"accounts": ["999999999999"]}))  # outside TargetAccounts

    exit_code = cli.main(["run", "--account", "fixtures/demo-organization.json", "--event", str(tmp_path / "event.json"), "--json"])

    document = json.loads(capsys.readouterr().out)
    assert exit_code == 1 and document["failedRuns"] == ["run-001"] and document["failedAsMeant"] == []
    assert document["runs"][0]["error"] == "InvalidInput" and "999999999999" in document["runs"][0]["cause"]


def test_make_run_shows_the_organization_demo_after_the_single_account_one(root):
    import subprocess

    dry = subprocess.run(["make", "-n", "--no-print-directory", "run", "READY=", "CHECKOV_READY="], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    commands = [line for line in dry.splitlines() if " -m emulator" in line]
    assert [c.split(" -m emulator", 1)[1].split("||")[0].strip() for c in commands] == [
        "", "--account fixtures/demo-organization.json"], dry
