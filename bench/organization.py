"""make bench-organization: one scheduled run of a hub over an organization of member accounts, on the emulator.

    python -m bench.organization                          # 100 member accounts of 10 users (a minute or two)
    python -m bench.organization --accounts 300 --users 5 --param ParallelBatches=10

The hub (template.yaml, TargetAccounts=ORGANIZATION) is deployed in the management account, member/template.yaml
in each member account through the real template, and each account's users are seeded with keys of every age (a
quarter due). It measures what bench/measure.py measures for one account (histories, children, payloads, AWS
calls by operation) and what only an organization has: the AssumeRole calls per account, and the calls and time
of the one Lambda that reads every account ("Plan the run"). It checks the invariants in every account and scans
what the run published for every secret IAM issued. Exit status 1 if the run failed, passed a limit, broke an
invariant or leaked a secret.
"""

from __future__ import annotations

import argparse
import sys
import time

from emulator.cli import parameter_override
from emulator.runner import Emulator

from . import measure
from .measure import CHILD_EVENT_LIMIT, PARENT_EVENT_LIMIT, PAYLOAD_LIMIT_BYTES

START = "2026-01-05T06:00:00Z"
SENDER = "key-rotation@example.com"


def organization(accounts: int, users: int, overrides: dict) -> dict:
    """The fixture: the hub with the member stack too (ORGANIZATION takes it in), ``accounts`` member accounts of
    ``users`` users each, their keys 0 to 99 days old (a quarter past the rotation age of 80)."""

    def members_users(a: int) -> list[dict]:
        return [
            {"name": f"a{a:04d}-u{u:04d}", "tags": {"KeyRotation": "enabled"},
             "keys": [{"ageDays": (a * 7 + u * 13) % 100, "inSecret": True}]}
            for u in range(users)
        ]

    return {
        "start": START,
        "parameters": {"TargetAccounts": "ORGANIZATION", "SenderEmail": SENDER, "NotificationEmails": "team@example.com", **overrides},
        "verifiedEmails": [SENDER],
        "organization": {
            "hubMemberStack": True,
            "accounts": [{"name": f"member-{a:04d}", "users": members_users(a)} for a in range(1, accounts + 1)],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-organization", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100, help="member accounts (default 100)")
    parser.add_argument("--users", type=int, default=10, help="managed users in each (default 10)")
    parser.add_argument("--param", action="append", default=[], type=parameter_override, metavar="NAME=VALUE", help="a template parameter")
    args = parser.parse_args(argv)

    print(f"bench: an organization of {args.accounts:,} member accounts of {args.users:,} users ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with Emulator(organization(args.accounts, args.users, dict(args.param))) as aws:
        seeding = time.perf_counter() - started
        f = measure.figures(aws, f"{args.accounts} accounts", seeding)
    accounts = args.accounts + 1  # the hub's own is in the organization too
    plan_run = f.functions.get("PlanRun", measure.FunctionFigures())
    assumed = f.calls_by_operation.get("sts:AssumeRole", 0)
    problems = []
    if f.status != "SUCCEEDED":
        problems.append(f"the run ended {f.status}")
    if f.parent_events >= PARENT_EVENT_LIMIT or f.largest_child_events >= CHILD_EVENT_LIMIT or f.largest_payload.bytes > PAYLOAD_LIMIT_BYTES:
        problems.append("a Step Functions limit was passed")
    problems += f.invariant_violations + ([f"{f.leaks} published texts hold a secret"] if f.leaks else [])

    rows = [
        ("Accounts (members and the hub's)", f"{accounts:,}"),
        ("Managed users", f"{f.managed_users:,}"),
        ("Run", f.status),
        ("Rotated / retired / accounts not reached", "{:,} / {:,} / {:,}".format(
            f.summary.get("rotated", 0), f.summary.get("retired", 0), f.summary.get("unreachableAccounts", 0))),
        (f"Run's history events (bound {PARENT_EVENT_LIMIT:,})", f"{f.parent_events:,}"),
        ("Child executions", f"{f.children:,}"),
        (f"Largest child's events (limit {CHILD_EVENT_LIMIT:,})", f"{f.largest_child_events:,}"),
        (f"Largest payload (bound {PAYLOAD_LIMIT_BYTES // 1024} KiB)", f"{f.largest_payload.bytes / 1024:.1f} KiB ({f.largest_payload.where})"),
        ("AssumeRole calls, per account", f"{assumed:,}, {assumed / accounts:.1f}"),
        ("Plan the run: AWS calls, per account", f"{plan_run.calls:,}, {plan_run.calls / accounts:.1f}"),
        ("Plan the run: most calls in flight at once", f"{plan_run.longest_in_flight}"),
        ("Emulator: seeding / the run / Plan the run", f"{seeding:.0f} s / {f.seconds_run:.0f} s / {plan_run.seconds:.1f} s"),
        ("Invariants held in every account, no secret published", "yes" if not (f.invariant_violations or f.leaks) else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\nAWS calls by operation:")
    for op, n in f.calls_by_operation.items():
        print(f"  {op:<40}{n:>10,}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
