"""`make run` and `python -m emulator run`: the commands a newcomer types, end to end, in-process.

The exit status is a contract (see --help): 0 all good, 1 a run did not succeed, 2 usage or input error,
3 a broken invariant or a leaked secret, 4 a crash of the emulator itself.
"""

import contextlib
import io
import json
import re
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from emulator import cli, commands, deployments, fixture, printing, snapshot, stack
from emulator.runner import Email, Emulator, Run

EVENTS = stack.ROOT / "events"


@pytest.fixture(scope="module")
def demo() -> tuple[int, str]:
    """`make run`, once for the tests that read its report: (exit status, stdout)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exit_code = cli.main([])
    return exit_code, out.getvalue()


def test_the_demo_walks_the_lifecycle_and_its_checks_pass(demo):
    exit_code, shown = demo

    assert exit_code == 0
    for day in (0, 7, 14, 21):
        assert f"Day {day}: scheduled run" in shown
    for outcome in ("ROTATED", "RETIRED", "BLOCKED", "HELD", "EXEMPT"):
        assert f": {outcome}" in shown
    assert "Subject: IAM access key rotation 2026-01-05T06:00:00Z: 2 rotated, 1 blocked, 1 exempt" in shown
    assert "Timeline of run-001" in shown and "Act on each batch of users" in shown
    assert "ci-deployer: Note when the new key is created -> Create new access key" in shown  # the user its steps are
    assert "invariants (AWSCURRENT is an Active key of its user; every key created is stored; no Active key deleted): hold" in shown
    assert "Lambda payloads: none" in shown
    assert "Exit status 0" in shown


def without_timings(report: str) -> str:
    """The report with its timing figures masked: the timeline's milliseconds, and any "N ms" or "N s"."""
    report = re.sub(r"^( *)\d+(?=  \S)", r"\1<ms>", report, flags=re.M)
    return re.sub(r"\b\d+(\.\d+)? ?(ms|s|seconds)\b", "<time>", report)


def test_two_demos_print_the_same_key_ids_emails_and_timeline(demo):
    """A parallel Map creates keys and sends the owners' emails on several threads, in an order that varies from
    run to run: the report must not show it (README's sample is the real output, and two runs diff cleanly)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli.main([]) == 0

    first, second = without_timings(demo[1]).splitlines(), without_timings(out.getvalue()).splitlines()
    differing = [(number, a, b) for number, (a, b) in enumerate(zip(first, second), 1) if a != b]
    assert differing[:5] == [] and len(first) == len(second)


def test_a_runs_emails_show_the_teams_report_first_then_the_owners_by_recipient():
    sent = [Email("s@example.com", [to], subject, "") for to, subject in
            (("b-team@example.com", "yours"), ("team@example.com", "report"), ("a-team@example.com", "yours"))]
    run = Run("run-001", "2026-01-05T06:00:00Z", "SUCCEEDED", None, None, None, [], sent)
    aws = SimpleNamespace(deployment=SimpleNamespace(parameters={"NotificationEmails": " team@example.com"}))

    shown = [e.destinations for e in snapshot.emails_in_order(aws, run)]

    assert shown == [["team@example.com"], ["a-team@example.com"], ["b-team@example.com"]]
    assert [e.destinations for e in run.emails][0] == ["b-team@example.com"]  # what was sent is left as it was


def test_the_keys_and_secret_versions_are_aligned_tables(demo):
    lines = demo[1].splitlines()
    for heading, first_cell in (("KEY", r"AKIA|\(no keys\)"), ("VERSION", r"key-rotation-")):
        header = next(line for line in lines if re.match(rf"  \S+ +{heading} ", line))
        rows = []
        for line in lines[lines.index(header) + 1 :]:
            if not re.match(rf"  (\S+)? +({first_cell})", line):
                break
            rows.append(line)
        assert len(rows) >= 4, header
        column = header.index(heading)
        for row in rows:  # every key id and version id starts where its column's header does
            assert re.match(first_cell, row[column:]), (header, row)
        assert all(line == line.rstrip() for line in (header, *rows))
    keys = "\n".join(lines)
    assert re.search(r"^  alice +AKIA\w+ +Active +400d +out of scope$", keys, re.M)
    assert re.search(r"^  new-service +\(no keys\)$", keys, re.M)


def test_one_event_file_runs_against_an_account_fixture(capsys):
    exit_code = cli.main(["run", "--event", str(EVENTS / "on-demand-rotation.json")])

    shown = capsys.readouterr().out
    assert exit_code == 0
    assert "ci-deployer: ROTATED" in shown and "rotation forced on demand" in shown


def test_json_is_one_document_with_the_runs_keys_secrets_emails_and_checks(capsys):
    exit_code = cli.main(["--json", "--days", "0,7"])  # demo is the default command, options and all

    out = capsys.readouterr().out
    document = json.loads(out)  # the whole of stdout is one JSON document
    assert exit_code == 0 == document["exitCode"]
    assert document["command"] == "demo" and document["fixture"].endswith("demo-account.json")
    assert document["parameters"]["MaxKeyAgeDays"] == "90"
    first, second = document["runs"]
    assert (first["name"], first["day"], first["time"], first["status"]) == ("run-001", 0, "2026-01-05T06:00:00Z", "SUCCEEDED")
    assert second["day"] == 7 and second["input"] == {"time": "2026-01-12T06:00:00Z"}
    assert {"error", "cause", "output", "statesEntered"} <= set(first) and first["error"] is None
    assert first["statesEntered"][0] == "Plan the run"
    before, after = first["keys"]["ci-deployer"]["before"], first["keys"]["ci-deployer"]["after"]
    assert len(before) == 1 and len(after) == 2 and set(before) < set(after)
    (new_key,) = set(after) - set(before)
    stages = {v["keyId"]: v["stages"] for v in first["secretVersions"]["ci-deployer"]}
    assert stages == {new_key: ["AWSCURRENT"], next(iter(before)): ["AWSPREVIOUS"]}
    assert [e["recipients"] for e in first["emails"]] == [  # the report first, then the owners' by recipient
        ["platform-team@example.com"], ["billing-team@example.com"], ["partner-team@example.com"]
    ]
    (email,) = [e for e in first["emails"] if e["recipients"] == ["platform-team@example.com"]]
    assert email["subject"] == "IAM access key rotation 2026-01-05T06:00:00Z: 2 rotated, 1 blocked, 1 exempt"
    assert email["recipients"] == ["platform-team@example.com"] and email["source"] == "key-rotation@example.com"
    assert "ci-deployer: ROTATED" in email["body"]
    users = {u["name"]: u for u in document["accountBefore"]["users"]}
    assert users["alice"]["managed"] is False and users["alice"]["keys"][0]["ageDays"] == 400
    assert users["new-service"]["keys"] == [] and users["new-service"]["secret"] is None
    # Read when the last run ended: its calls and transitions took a few seconds of the emulator's clock.
    assert "2026-01-12T06:00:00Z" < document["accountAfter"]["time"] < "2026-01-12T06:01:00Z"
    assert document["invariantViolations"] == [] and document["leakedTexts"] == 0 and document["checkedTexts"] > 0
    assert document["failedRuns"] == []


@pytest.mark.parametrize(
    "event",
    [EVENTS / "plan-run-invalid-input.json", {"time": "not-a-time"}],
    ids=["a Lambda event as execution input", "a time that is not a time"],
)
def test_a_run_that_fails_exits_1_and_says_why(event, tmp_path, capsys, monkeypatch):
    if isinstance(event, dict):
        (tmp_path / "event.json").write_text(json.dumps(event))
        event = tmp_path / "event.json"
    monkeypatch.setattr(cli.sys, "stderr", _Terminal())  # the progress line shows only on a terminal

    exit_code = cli.main(["run", "--event", str(event), "--json"])

    document = json.loads(capsys.readouterr().out)
    assert exit_code == 1 == document["exitCode"]
    (run,) = document["runs"]
    assert (run["status"], run["error"]) == ("FAILED", "InvalidInput")
    assert run["cause"] and document["failedRuns"] == ["run-001"] and document["event"].endswith(event.name)
    assert document["invariantViolations"] == [] and document["leakedTexts"] == 0
    assert "run 1/1" in cli.sys.stderr.getvalue()


def test_a_broken_invariant_exits_3_whatever_the_runs_did(capsys, monkeypatch):
    monkeypatch.setattr(Emulator, "invariant_violations", lambda self, *runs: ["ci-deployer: simulated violation"])

    exit_code = cli.main(["run", "--event", str(EVENTS / "dry-run.json")])

    shown = capsys.readouterr().out
    assert exit_code == 3
    assert "VIOLATED: ci-deployer: simulated violation" in shown and "Exit status 3" in shown


# Whatever made the command fail, its last line says what happened and what to do: on stdout after the report,
# on stderr with --json (stdout is the document) and for an input error (nothing ran).


def last_line(text: str) -> str:
    assert text.endswith("\n"), repr(text[-200:])
    return text.splitlines()[-1]


@pytest.mark.parametrize("as_json", [False, True], ids=["report", "--json"])
def test_a_rejected_input_ends_with_the_runs_reason_and_what_to_fix(as_json, capsys):
    exit_code = cli.main(["run", "--event", str(EVENTS / "plan-run-invalid-input.json")] + ["--json"] * as_json)

    captured = capsys.readouterr()
    assert exit_code == 1
    if as_json:
        assert json.loads(captured.out)["exitCode"] == 1  # the document is intact, the line is not in it
    line = last_line(captured.err if as_json else captured.out)
    assert line.startswith("run-001 FAILED: InvalidInput: unknown field(s) execution, executionName, input")
    assert line.endswith(": fix the execution input (nothing was changed)")


def test_a_failed_run_line_shows_the_start_of_its_cause_without_the_summary():
    document = {"invariantViolations": [], "leakedTexts": 0, "failedAsMeant": ["run-000"], "runs": [
        {"name": "run-000", "status": "FAILED", "error": "RotationFailed", "cause": "1 account(s) not reached: ..."},
        {"name": "run-001", "status": "SUCCEEDED", "error": None, "cause": None},
        {"name": "run-002", "status": "FAILED", "error": "RotationFailed",
         "cause": "1 user(s) failed: svc (AccessDenied\non iam:CreateAccessKey) Summary: {\"users\": []}"},
        {"name": "run-003", "status": "FAILED", "error": "States.Timeout", "cause": "x" * 1000},
    ]}

    assert commands.what_went_wrong(document) == (
        "2 runs did not succeed, the first: run-002 FAILED: RotationFailed: 1 user(s) failed: svc (AccessDenied on "
        "iam:CreateAccessKey): fix what the cause says for each account and user, then run again"
    )
    document["runs"] = document["runs"][3:]
    line = commands.what_went_wrong(document)
    assert line == "run-003 FAILED: States.Timeout: " + "x" * 297 + "...: fix what the cause says, then run again"


@pytest.mark.parametrize("as_json", [False, True], ids=["report", "--json"])
def test_a_broken_invariant_or_a_leak_ends_with_what_broke(as_json, capsys, monkeypatch):
    violations = ["run-001: Active key AKIA0 was deleted", "run-001: key AKIA1 was deactivated before a key check"]
    monkeypatch.setattr(Emulator, "invariant_violations", lambda self, *runs: violations)
    monkeypatch.setattr(Emulator, "leaked_texts", lambda self, *runs: ["a text that held a secret"])

    exit_code = cli.main(["run", "--event", str(EVENTS / "plan-run-invalid-input.json")] + ["--json"] * as_json)

    captured = capsys.readouterr()
    assert exit_code == 3  # whatever the run did: this one failed, and the line is not about it
    assert last_line(captured.err if as_json else captured.out) == (
        "invariant violated: run-001: Active key AKIA0 was deleted (and 1 more); a secret access key appeared in 1 "
        "published text(s): a bug in the workflow (statemachine/, functions/): fix it before deploying"
    )


@pytest.mark.parametrize(
    "argv, line",
    [
        (["demo", "--no-such-option"],
         "python -m emulator: error: unrecognized arguments: --no-such-option (see python -m emulator --help)"),
        (["run"], "python -m emulator run: error: the following arguments are required: --event "
         "(see python -m emulator run --help)"),
        (["run", "--event", "no-such-file.json"],
         "error: event no-such-file.json: No such file or directory: give the path of a JSON file"),
        (["--param", "UserPath=no-slash", "--json"], "error: parameter UserPath='no-slash': an IAM path that starts and "
         "ends with a slash, such as / or /service-accounts/: fix --param or the fixture's \"parameters\""),
        (["diagram", "--asl", "README.md"], "error: ASL README.md: Expecting value: line 1 column 1 (char 0): give the "
         "path of a state machine definition (JSON)"),
    ],
)
def test_a_usage_or_input_error_ends_with_what_to_fix(argv, line, capsys):
    assert cli.main(argv) == 2

    captured = capsys.readouterr()
    assert captured.out == "" and last_line(captured.err) == line


@pytest.mark.parametrize("refusal", [
    stack.TemplateError("Fn::Cidr is not supported by the emulator"),
    ClientError({"Error": {"Code": "ValidationError", "Message": "bad role"}}, "CreateRole"),
], ids=["unsupported", "refused by an API"])
def test_a_template_the_emulator_cannot_deploy_says_to_fix_the_template_not_the_parameters(refusal, capsys, monkeypatch):
    def deploy(*args, **kwargs):
        raise refusal

    monkeypatch.setattr(stack, "deploy", deploy)
    monkeypatch.setattr(deployments, "_deployments", {})  # no cached deployment to restore

    assert cli.main(["demo"]) == 2
    line = last_line(capsys.readouterr().err)
    assert line.endswith(": fix template.yaml or statemachine/rotation.asl.json, or teach emulator/stack.py what they use")
    assert "Fn::Cidr" in line or "the stack could not be deployed: An error occurred (ValidationError)" in line


def test_a_bad_parameter_is_refused_with_a_clear_message(capsys):
    exit_code = cli.main(["demo", "--param", "UserPath=no-slash"])

    assert exit_code == 2
    assert "parameter UserPath='no-slash'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, said",
    [
        (["demo", "--no-such-option"], "unrecognized arguments"),
        (["rotate"], "invalid choice"),
        (["run"], "--event"),
        (["--param", "MaxKeyAgeDays"], "is not NAME=VALUE"),
        (["--days", "14,7"], "in order"),
        (["--param", "NoSuchParameter=1"], "unknown parameter(s) NoSuchParameter"),
        (["run", "--event", "no-such-file.json"], "event no-such-file.json: No such file"),
        (["run", "--event", "README.md"], "event README.md is not valid JSON"),
    ],
)
def test_usage_and_input_errors_exit_2_before_anything_runs(argv, said, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert said in captured.err and captured.out == ""


def test_a_fixture_that_does_not_follow_the_format_exits_2_with_every_problem(tmp_path, capsys):
    broken = {
        "start": "yesterday",
        "users": [
            {"name": "ci-deployer", "keys": [{"ageDay": 95}]},
            {"name": "svc", "path": "services", "keys": [{"status": "Disabled"}, {}, {}]},
            {"name": "ci-deployer"},
        ],
    }
    (tmp_path / "account.json").write_text(json.dumps(broken))

    assert cli.main(["--account", str(tmp_path / "account.json")]) == 2

    err = capsys.readouterr().err
    for problem in ("start 'yesterday'", "unknown field(s) ageDay", "path 'services'", "at most 2 keys", "a second user"):
        assert problem in err
    assert last_line(err) == (
        f"error: account fixture {tmp_path / 'account.json'} does not follow the format: fix the 5 problem(s) above "
        "(python -m emulator --help shows the format)"
    )


def test_the_fixture_checks_accept_the_demo_and_name_each_problem():
    assert fixture.fixture_problems(json.loads((stack.ROOT / "fixtures" / "demo-account.json").read_text())) == []
    assert fixture.fixture_problems([]) == ["it must be a JSON object"]
    problems = fixture.fixture_problems(
        {"users": [{"name": "a", "tags": {"KeyRotation": True},
                    "keys": [{"ageDays": -1, "created": "2026-01-01", "inSecret": "yes", "status": "active"}]}]}
    )
    assert len(problems) == 6, problems  # tags, ageDays, both ageDays and created, created, status, inSecret
    assert fixture.fixture_problems({"seed": 7}) == []
    assert fixture.fixture_problems({"seed": "7"}) == ["seed '7' is not a whole number, e.g. 0"]


def test_help_explains_the_fixture_format_the_exit_status_and_json(capsys):
    for argv in (["--help"], ["run", "--help"]):
        assert cli.main(argv) == 0
        shown = capsys.readouterr().out
        for field in sorted(fixture.FIXTURE_FIELDS | fixture.USER_FIELDS | fixture.KEY_FIELDS):
            assert f'"{field}"' in shown, field
        for code in range(5):
            assert re.search(rf"^  {code}  \S", shown, re.M), code
        assert "--json" in shown and '"invariantViolations"' in shown
    assert cli.main(["--help"]) == 0
    assert "python -m emulator run --account my-account.json --event" in capsys.readouterr().out


def test_table_pads_columns_and_leaves_out_empty_ones():
    lines = printing.table(["NAME", "AGE", "NOTE"], [["a", "5d", ""], ["bbbb", "120d", ""]], right=frozenset({1}))

    assert lines == ["  NAME   AGE", "  a       5d", "  bbbb  120d"]


def test_the_progress_line_shows_only_on_a_terminal():
    quiet, terminal = io.StringIO(), _Terminal()
    for stream in (quiet, terminal):
        progress = printing.Progress(stream)
        progress.show("run 3/4 (day 14) ...")
        progress.clear()

    assert quiet.getvalue() == ""
    assert terminal.getvalue() == "\r\033[Krun 3/4 (day 14) ...\r\033[K"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
