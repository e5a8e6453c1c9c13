"""Run the rotation offline: the real template, state machine and Lambda on an emulated account.

    python -m emulator                      # the demo: fixtures/demo-account.json, runs on day 0, 7, 14, 21
    python -m emulator run --account my-account.json --event events/on-demand-rotation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import decisions
import report

from . import account, stack
from .runner import Emulator, Run

DEMO_FIXTURE = stack.ROOT / "fixtures" / "demo-account.json"
DEMO_DAYS = (0, 7, 14, 21)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description=__doc__.split("\n\n")[0],
        epilog=account.__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="walk the demo account through the lifecycle (the default)")
    demo.add_argument("--account", type=Path, default=DEMO_FIXTURE, help="account fixture (JSON)")
    demo.add_argument("--days", default=",".join(map(str, DEMO_DAYS)), help="days of the scheduled runs, e.g. 0,7,14")
    one = commands.add_parser("run", help="run one execution input (an events/ file) against an account fixture")
    one.add_argument("--account", type=Path, default=DEMO_FIXTURE, help="account fixture (JSON)")
    one.add_argument("--event", type=Path, required=True, help="execution input, e.g. events/scheduled-run.json")
    for sub in (demo, one):
        sub.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter override")
    args = parser.parse_args(argv)

    try:
        fixture = json.loads((args.account if args.command else DEMO_FIXTURE).read_text())
        overrides = dict(p.split("=", 1) for p in getattr(args, "param", []))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return run_one(fixture, json.loads(args.event.read_text()), overrides, args.event)
        days = [int(d) for d in getattr(args, "days", ",".join(map(str, DEMO_DAYS))).split(",")]
        return walk(fixture, days, overrides, getattr(args, "account", DEMO_FIXTURE))
    except stack.TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def walk(fixture: dict, days: list[int], overrides: dict, source: Path) -> int:
    with Emulator(fixture, overrides) as aws:
        _header(aws, source)
        print(f"\nThe account on day 0 ({aws.clock.now:%Y-%m-%d}), before any run:")
        _print_keys(aws, aws.users)
        runs, day = [], 0
        for target in days:
            aws.advance(target - day)
            day = target
            run = aws.scheduled_run()
            runs.append(run)
            _print_run(aws, run, f"Day {day}: scheduled run")
        _print_timeline(runs[0])
        return _closing_checks(aws, runs)


def run_one(fixture: dict, execution_input: dict, overrides: dict, source: Path) -> int:
    with Emulator(fixture, overrides) as aws:
        _header(aws, source)
        if "time" in execution_input:
            aws.clock.now = decisions.parse_time(execution_input["time"])
        print("\nThe account before the run:")
        _print_keys(aws, aws.users)
        run = aws.start(execution_input)
        _print_run(aws, run, f"Execution of {source}")
        _print_timeline(run)
        return _closing_checks(aws, [run])


def _header(aws: Emulator, source: Path) -> None:
    p = aws.deployment.parameters
    shown = ("MaxKeyAgeDays", "InstallWindowDays", "RecoveryWindowDays", "UserPath", "UserTagKey", "UserTagValue", "DryRun")
    print("IAM access key rotation, offline: template.yaml (through the SAM translator), statemachine/rotation.asl.json")
    print("and functions/preflight on an emulated AWS account (moto). No AWS account is used.")
    print(f"Account fixture: {source}")
    print("Parameters: " + ", ".join(f"{k}={p[k]!r}" for k in shown))


def _print_keys(aws: Emulator, users: list[str]) -> None:
    rows, secrets = [], []
    for user in users:
        keys = sorted(account.keys_of(user), key=lambda k: k.created)
        versions = account.secret_versions(aws.secret_prefix + user)
        stages = {v.key_id: "+".join(v.stages) for v in versions}
        described = [
            f"{k.id} {k.status:<8} {(aws.clock.now - k.created).days:>3}d" + (f" [{stages[k.id]}]" if k.id in stages else "")
            for k in keys
        ]
        rows.append((user, described or ["(no keys)"], "" if _managed(aws, user) else "out of scope"))
        if versions:
            existing = {k.id for k in keys}
            listed = ", ".join(
                f"{v.version_id} [{'+'.join(v.stages)}]" + ("" if v.key_id in existing else " (key deleted)")
                for v in versions
            )
            secrets.append(f"    {aws.secret_prefix + user}: {listed}")
    width = max(len(u) for u, _, _ in rows)
    for user, described, scope in rows:
        print(f"  {user:<{width}}  {described[0]:<48}  {scope}")
        for line in described[1:]:
            print(f"  {'':<{width}}  {line}")
    if secrets:
        print("  Secrets (staged versions; a version id names the key it holds, the value is never shown):")
        print("\n".join(secrets))


def _managed(aws: Emulator, user: str) -> bool:
    p = aws.deployment.parameters
    path = next(u for u in aws.fixture["users"] if u["name"] == user).get("path", "/")
    return decisions.is_managed(path, account.tags_of(user), p["UserPath"], p["UserTagKey"], p["UserTagValue"])


def _print_run(aws: Emulator, run: Run, title: str) -> None:
    states = len(run.states_entered())
    print(f"\n{'=' * 100}\n{title} at {run.time}: {run.name} {run.status}, {states} states entered")
    if run.status != "SUCCEEDED":
        print(f"  error: {run.error}\n  cause: {run.cause}")
    summary = run.output or _summary_from_cause(run.cause)
    if summary:
        for entry in summary["users"]:
            print("\n".join("  " + line for line in report.user_paragraph(entry)))
        print(f"  ({summary['unchangedUsers']} of {summary['managedUsers']} managed users unchanged)")
    changed = [u for u in aws.users if run.keys_after[u] != run.keys_before[u]]
    print("  Keys and secrets of the users this run changed:" if changed else "  No key or secret changed.")
    if changed:
        _print_keys(aws, changed)
    for email in run.emails:
        print(f"  Email from {email.source} to {', '.join(email.destinations)}")
        print(f"    Subject: {email.subject}")
        for line in email.body.splitlines():
            print(f"    | {line}")
    if not run.emails:
        print("  No email: nothing changed, blocked or failed.")


def _summary_from_cause(cause: str | None) -> dict | None:
    if cause and "Summary: " in cause:
        try:
            return json.loads(cause.split("Summary: ", 1)[1])
        except ValueError:
            return None
    return None


def _print_timeline(run: Run) -> None:
    """States in the order they were entered; each Map iteration on its own line, Choice states left out."""
    print(f"\nTimeline of {run.name} (ms since the execution started):")
    start = run.events[0]["timestamp"]
    iteration_of, iterations, top_level = {}, {}, []
    for event in run.events:
        previous = event.get("previousEventId")
        if event["type"] == "MapIterationStarted":
            iteration_of[event["id"]] = event["mapIterationStartedEventDetails"]["index"]
            iterations[iteration_of[event["id"]]] = []
        elif previous in iteration_of and event["type"] != "MapIterationSucceeded":
            iteration_of[event["id"]] = iteration_of[previous]
        details = event.get("stateEnteredEventDetails")
        if not details:
            continue
        if event["id"] not in iteration_of:
            top_level.append(((event["timestamp"] - start).total_seconds() * 1000, details["name"], event["type"]))
        elif event["type"] != "ChoiceStateEntered":
            iterations[iteration_of[event["id"]]].append(details["name"])
    users = _iteration_users(run)
    for ms, name, kind in top_level:
        print(f"  {ms:6.0f}  {name:<24} {kind.replace('StateEntered', '')}")
        if kind == "MapStateEntered":
            for index in sorted(iterations):
                print(f"          {users.get(index, index)}: " + " -> ".join(iterations[index]))


def _iteration_users(run: Run) -> dict[int, str]:
    for event in run.events:
        details = event.get("taskSucceededEventDetails")
        if details and details.get("resourceType") == "lambda":
            plan = json.loads(details["output"])["Payload"]
            return {i: a["user"] for i, a in enumerate(plan.get("actions", []))}
    return {}


def _closing_checks(aws: Emulator, runs: list[Run]) -> int:
    checked = sum(len(r.published_texts()) for r in runs)
    leaks = aws.leaked_texts(*runs)
    problems = aws.invariant_violations(*runs)
    print("\nChecks after every run:")
    print("  invariants (AWSCURRENT is an Active key of its user; every key created is stored; no Active key deleted): "
          + ("hold" if not problems else "VIOLATED: " + "; ".join(problems)))
    print(f"  secret access keys in {checked} outputs, causes, emails and Lambda payloads: "
          + ("none" if not leaks else f"FOUND in {len(leaks)}"))
    failed = [r.name for r in runs if r.status != "SUCCEEDED"]
    if failed:
        print(f"  runs that did not succeed: {', '.join(failed)}")
    return 1 if problems or leaks else 0


if __name__ == "__main__":
    sys.exit(main())
