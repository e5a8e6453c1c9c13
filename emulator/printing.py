"""The report for people: the account's keys and secrets as tables, what each run did, its timeline, and a
progress line while the runs go.

It prints what emulator.snapshot read, so the report and --json show the same account.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import report

from . import diagram, history
from .runner import Emulator, Run
from .snapshot import account_state, children_in_order, emails_in_order, member_states


def table(header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset(), indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell (``right``: right-aligned); a column with no value is left out."""
    kept = [i for i in range(len(header)) if any(row[i] for row in rows)]
    header, rows = [header[i] for i in kept], [[row[i] for i in kept] for row in rows]
    right = {kept.index(i) for i in right if i in kept}
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return (indent + "  ".join(padded)).rstrip()

    return [line(header), *map(line, rows)]


def shown(path: Path) -> str:
    """A path as people read it: relative to the current directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_header(aws: Emulator, source: Path) -> None:
    p = aws.deployment.parameters
    names = ("MaxKeyAgeDays", "InstallWindowDays", "RecoveryWindowDays", "UserPath", "UserTagKey", "UserTagValue", "DryRun")
    print("IAM access key rotation, offline: template.yaml (through the SAM translator), statemachine/rotation.asl.json")
    print("and the Lambda functions on an emulated AWS account (moto). No AWS account is used.")
    print(f"Account fixture: {shown(source)}")
    print("Parameters: " + ", ".join(f"{k}={p[k]}" for k in names if k in p))


def print_members(members: dict[str, dict], indent: str = "  ") -> None:
    """Each member account's tables (snapshot.member_states), under its name and id."""
    for name, member in members.items():
        print(f"{indent}Account {name} ({member['id']}):")
        print_account(member["users"], indent)


def print_account(users: list[dict], indent: str = "  ") -> None:
    """The keys table (a row per key, oldest first), then the secrets' staged versions."""
    rows = []
    for user in users:
        stages = {v["keyId"]: "+".join(v["stages"]) for v in user["secretVersions"]}
        scope = "" if user["managed"] else "out of scope"
        keys = user["keys"] or [None]
        for n, key in enumerate(keys):
            name = user["name"] if n == 0 else ""
            if key is None:
                rows.append([name, "(no keys)", "", "", "", scope])
            else:
                rows.append([name, key["id"], key["status"], f"{key['ageDays']}d", stages.get(key["id"], ""),
                             scope if n == 0 else ""])
    print("\n".join(table(["USER", "KEY", "STATUS", "AGE", "IN SECRET", "SCOPE"], rows, frozenset({3}), indent)))
    versions = []
    for user in users:
        for n, v in enumerate(user["secretVersions"]):
            versions.append([user["secret"] if n == 0 else "", v["versionId"], "+".join(v["stages"]),
                             v["keyStatus"] or "(not written by the workflow)"])
    if versions:
        print(f"{indent}Secrets: their staged versions (a version id names the key it holds; values are never shown):")
        print("\n".join(table(["SECRET", "VERSION", "STAGES", "KEY NOW"], versions, indent=indent)))


def print_run(aws: Emulator, run: Run, title: str) -> None:
    states = len(run.states_entered())
    print(f"\n{'=' * 100}\n{title} at {run.time}: {run.name} {run.status}, {states} states entered")
    if run.status != "SUCCEEDED":
        print(f"  error: {run.error}\n  cause: {run.cause}")
    summary = None
    with contextlib.suppress(ValueError):  # a cause that only looks like it ends with a summary
        summary = run.summary
    if isinstance(summary, dict) and "users" in summary:
        for entry in summary["users"]:  # across accounts, each user with its account
            print("\n".join("  " + line for line in report.user_paragraph(entry)))
        print(f"  ({summary.get('unchangedUsers')} of {summary.get('managedUsers')} managed users unchanged)")
    # (heading, account, its users' specs), the hub's first, which has a heading only beside member accounts
    members, hub = aws.member_users(), aws.account_ids[0]
    accounts = [(f"The hub's account ({hub}):" if members else "", hub, aws.fixture.get("users", []))]
    accounts += [(f"Account {name} ({account_id}):", account_id, specs) for name, account_id, specs in members]
    changed = []
    for heading, account_id, specs in accounts:
        state = run.accounts[account_id]
        changed.append((heading, account_id, specs, [u["name"] for u in specs if state.keys_after[u["name"]] != state.keys_before[u["name"]]]))
    anything = any(users for *_, users in changed)
    print("  Keys and secrets of the users this run changed:" if anything else "  No key or secret changed.")
    for heading, account_id, specs, users in changed:
        if users:
            if heading:
                print(f"    {heading}")
            print_account(account_state(aws, users, account_id, specs), indent="    ")
    for email in emails_in_order(aws, run):
        print(f"  Email from {email.source} to {', '.join(email.destinations)}")
        print(f"    Subject: {email.subject}")
        for line in email.body.splitlines():
            print(f"    | {line}".rstrip())
    if not run.emails:
        print("  No email: nothing changed, blocked, needed attention or failed.")


def print_timeline(run: Run) -> None:
    """The run's states in the order they were entered (Choice states left out), and under each Distributed Map
    its child executions: each batch, and in a batch each user's steps, named by the user its iteration acts on."""
    if not run.events:
        return
    print(f"\nTimeline of {run.name} (ms since the execution started):")
    start = run.events[0]["timestamp"]
    labels = _map_labels(diagram.load())
    entered = [(e, e["stateEnteredEventDetails"]["name"]) for e in run.events if "stateEnteredEventDetails" in e]
    width = max((len(name) for _, name in entered), default=0)
    for event, name in entered:
        kind = event["type"].replace("StateEntered", "")
        print(f"  {(event['timestamp'] - start).total_seconds() * 1000:6.0f}  {name:<{width}}  {kind}")
        for child in (c for c in children_in_order(run) if f"/{labels.get(name)}:" in c.map_run_arn):
            for line in _child_lines(child):
                print("          " + line)


def _map_labels(asl: dict) -> dict[str, str]:
    """Each Distributed Map's state name -> its Label (which names its map runs and child executions)."""
    return {name: state["Label"] for name, state in asl["States"].items() if state.get("Label")}


def _child_lines(child) -> list[str]:
    """One child execution: a batch planned, a batch acted on (a line per user), or an owner email."""
    given = child.input if isinstance(child.input, dict) else {}
    if "to" in given:
        return [f"email to {', '.join(given['to'])}: {'sent' if child.status == 'SUCCEEDED' else 'NOT SENT'}"]
    if child.status != "SUCCEEDED":
        return [f"batch {given.get('batch')}: {child.status} ({child.error})"]
    if "actions" in (child.output or {}):
        plan = child.output
        counts = ", ".join(f"{len(plan[k])} {k}" for k in ("actions", "blocked", "attention", "unreadable") if plan[k])
        return [f"batch {plan['batch']}: {len(given.get('users', []))} users planned" + (f" ({counts})" if counts else "")]
    users = [u["user"] for u in given.get("users", [])]
    steps = {i: history.states_entered(events, choices=False) for i, events in history.iterations(child.events).items()}
    lines = [f"batch {given.get('batch')}: {len(users)} users acted on"]
    return lines + [f"  {users[i] if i < len(users) else i}: " + " -> ".join(steps[i]) for i in sorted(steps)]


class Progress:
    """A one-line "run 3/4 ..." on stderr while the runs go, only when stderr is a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.clear()  # also when an error ends the command: its message starts on a clean line
