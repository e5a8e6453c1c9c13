"""The demo and run commands: deploy and seed the account, start the executions, report them, then check the
invariants and scan everything published for a secret, which decides the exit status.

The report goes to stdout for people; with --json, stdout holds one JSON document and the rest goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import decisions
from botocore.exceptions import BotoCoreError, ClientError

from . import stack
from .fixture import InputError
from .printing import Progress, print_account, print_header, print_members, print_run, print_timeline, shown
from .runner import Emulator, Run
from .snapshot import account_state, member_states, run_record

DEMO_FIXTURE = stack.ROOT / "fixtures" / "demo-account.json"

EXIT_OK, EXIT_RUN_FAILED, EXIT_BROKEN_PROMISE = 0, 1, 3


def walk(fixture: dict, days: list[int], overrides: dict, source: Path, as_json: bool = False) -> int:
    """The demo: the daily schedule on each of ``days`` (days after the fixture's start)."""
    with Progress() as progress, _emulator(fixture, overrides, progress) as aws, _stdout_kept_for_json(as_json):
        before = _account_before(aws, progress, source, f"on day 0 ({aws.clock.now:%Y-%m-%d}), before any run", as_json)
        runs, records, day = [], [], 0
        for number, target in enumerate(days, 1):
            progress.show(f"run {number}/{len(days)} (day {target}) ...")
            aws.advance(target - day)
            day = target
            execution_input = aws.scheduled_input()
            run = aws.start(execution_input)
            runs.append(run)
            records.append(run_record(aws, run, execution_input, day))
            progress.clear()
            if not as_json:
                print_run(aws, run, f"Day {day}: scheduled run")
        if not as_json and runs:
            print_timeline(runs[0])
        document = _finish(aws, runs, records, before, as_json)
    document.update(command="demo", fixture=shown(source), event=None)
    return _emit(document, as_json)


def _account_before(aws: Emulator, progress: Progress, source: Path, when: str, as_json: bool) -> dict:
    """The account before the first run: recorded for the document, and printed (unless --json)."""
    before = {"time": decisions.format_time(aws.clock.now), "users": account_state(aws, aws.users)}
    members = member_states(aws)
    if members:
        before["memberAccounts"] = members
    progress.clear()
    if not as_json:
        print_header(aws, source)
        print(f"\nThe account {when}:" if not members else f"\nThe hub's account ({aws.account_ids[0]}) {when}:")
        print_account(before["users"])
        print_members(members)
    return before


def run_one(
    fixture: dict, execution_input, overrides: dict, source: Path, account_source: Path = DEMO_FIXTURE, as_json: bool = False
) -> int:
    """One execution with ``execution_input`` (any JSON: the state machine judges it)."""
    with Progress() as progress, _emulator(fixture, overrides, progress) as aws, _stdout_kept_for_json(as_json):
        if isinstance(execution_input, dict) and "time" in execution_input:
            with contextlib.suppress(ValueError):  # a bad time is the run's to reject, with its message
                aws.move_to(decisions.parse_time(execution_input["time"]))
        before = _account_before(aws, progress, account_source, f"before the run ({decisions.format_time(aws.clock.now)})", as_json)
        progress.show("run 1/1 ...")
        run = aws.start(json.dumps(execution_input))
        record = run_record(aws, run, execution_input, None)
        progress.clear()
        if not as_json:
            print_run(aws, run, f"Execution of {shown(source)}")
            print_timeline(run)
        document = _finish(aws, [run], [record], before, as_json)
    document.update(command="run", fixture=shown(account_source), event=shown(source))
    return _emit(document, as_json)


@contextlib.contextmanager
def _emulator(fixture: dict, overrides: dict, progress: Progress):
    progress.show("deploying template.yaml and seeding the account ...")
    aws = Emulator(fixture, overrides)
    try:
        aws.__enter__()
    except (ClientError, BotoCoreError) as error:  # what IAM, SES or Secrets Manager refused while seeding
        raise InputError(f"the account fixture could not be seeded: {error}: fix the fixture") from None
    try:
        yield aws
    finally:
        aws.__exit__(None, None, None)


def _stdout_kept_for_json(as_json: bool):
    """With --json, stdout holds the one document: anything else printed meanwhile goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def _finish(aws: Emulator, runs: list[Run], records: list[dict], before: dict, as_json: bool) -> dict:
    checked = sum(len(r.published_texts()) for r in runs)
    leaks = aws.leaked_texts(*runs)
    problems = aws.invariant_violations(*runs)
    failed = [r.name for r in runs if r.status != "SUCCEEDED"]
    meant = [r.name for r in runs if _failed_as_the_fixture_means(aws, r)]
    code = EXIT_BROKEN_PROMISE if problems or leaks else EXIT_RUN_FAILED if set(failed) - set(meant) else EXIT_OK
    if not as_json:
        print("\nChecks after every run:")
        print("  invariants (AWSCURRENT is an Active key of its user; every key created is stored; no Active key deleted): "
              + ("hold" if not problems else "VIOLATED: " + "; ".join(problems)))
        print(f"  secret access keys in {checked} outputs, causes, emails and Lambda payloads: "
              + ("none" if not leaks else f"FOUND in {len(leaks)}"))
        if failed:
            print(f"  runs that did not succeed: {', '.join(failed)}")
        if meant:
            print(f"  of those, FAILED only because the account(s) without the member stack were not reached, as the "
                  f"fixture means: {', '.join(meant)}")
        print(f"Exit status {code}: " + {
            EXIT_OK: "every run succeeded" + (" (or failed only as the fixture means)" if meant else "") + " and every check passed.",
            EXIT_RUN_FAILED: "a run did not succeed; the invariants hold and no secret leaked.",
            EXIT_BROKEN_PROMISE: "a promise of the workflow was broken (above).",
        }[code])
    return {
        "parameters": dict(aws.deployment.parameters),
        "accountBefore": before,
        "runs": records,
        "accountAfter": {
            "time": decisions.format_time(aws.clock.now), "users": account_state(aws, aws.users),
            **({"memberAccounts": members} if (members := member_states(aws)) else {}),
        },
        "failedRuns": failed,
        "failedAsMeant": meant,
        "invariantViolations": problems,
        "leakedTexts": len(leaks),
        "checkedTexts": checked,
        "exitCode": code,
    }


def _failed_as_the_fixture_means(aws: Emulator, run: Run) -> bool:
    """Whether ``run`` FAILED only because it could not reach the member accounts the fixture deploys no member
    stack to (the organization demo shows that on purpose): those accounts and no others failed it, and no user
    failed or kept a key in use past its age. Any other failure, there too, is a failed run."""
    without, summary = aws.accounts_left_without_the_member_stack, run.summary
    if not without or run.status != "FAILED" or run.error != "RotationFailed" or summary is None:
        return False
    failing = {a["account"] for a in run.unreachable_accounts if a["failsRun"]}
    return failing == without and not summary.get("error") and not summary.get("failed") and not summary.get("overdue")


def _emit(document: dict, as_json: bool) -> int:
    """Print the JSON document (with --json), then, when the command did not succeed, the line that says why."""
    if as_json:
        order = ("command", "fixture", "event", "parameters", "accountBefore", "runs", "accountAfter")
        ordered = {k: document[k] for k in order} | {k: v for k, v in document.items() if k not in order}
        print(json.dumps(ordered, indent=2, default=str))
    if document["exitCode"] != EXIT_OK:
        print(what_went_wrong(document), file=sys.stderr if as_json else sys.stdout)
    return document["exitCode"]


# What to do about a run that ended with each error of the state machine's Fail states (rotation.asl.json).
_ADVICE = {
    "InvalidInput": "fix the execution input (nothing was changed)",
    "RotationFailed": "fix what the cause says for each account and user, then run again",
    "NotificationFailed": "the rotation itself is done: fix what kept the report from its readers, then run again",
}
_CAUSE_CHARS = 300  # a run's cause can hold 8,000 characters: the line shows its start


def what_went_wrong(document: dict) -> str:
    """One line, the command's last: what went wrong and what to do, so that nobody has to find it many lines up.

    A broken promise comes first, whatever the runs did; of several failed runs, the first (a later one may
    only follow from it). A leaked secret is counted, never shown: the line is printed like everything else."""
    problems, leaks, broken = document["invariantViolations"], document["leakedTexts"], []
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        broken.append(f"invariant violated: {problems[0]}{more}")
    if leaks:
        broken.append(f"a secret access key appeared in {leaks} published text(s)")
    if broken:
        return "; ".join(broken) + ": a bug in the workflow (statemachine/, functions/): fix it before deploying"
    failed = [r for r in document["runs"] if r["status"] != "SUCCEEDED" and r["name"] not in document["failedAsMeant"]]
    run = failed[0]
    cause = " ".join((run["cause"] or "").split(" Summary: ")[0].split())
    if len(cause) > _CAUSE_CHARS:
        cause = cause[: _CAUSE_CHARS - 3] + "..."
    which = f"{len(failed)} runs did not succeed, the first: " if len(failed) > 1 else ""
    advice = _ADVICE.get(run["error"], "fix what the cause says, then run again")
    return f"{which}{run['name']} {run['status']}: {run['error']}: " + (f"{cause}: " if cause else "") + advice
