"""make bench: one scheduled run of the real template on the emulator for accounts of 1,000 to 100,000 users.

    python -m bench.run                                   # what make bench runs (about half an hour on 2 cores)
    python -m bench.run --fleets 1000 --first-install 0   # one small account, a minute
    python -m bench.run --param ParallelBatches=10 --iam-rate 40 --json

For each account it deploys template.yaml on a fresh emulated account, seeds the users straight into moto
(bench/fleet.py; timed apart), starts one scheduled run and measures it (bench/measure.py): the parent's history
events, the largest child execution's, the largest payload, states entered per user by what the run did, AWS
calls per untouched user, the emulator's wall time; then projects the run's time and cost on AWS
(bench/projection.py, whose docstring states every assumption). After each run it checks the README's invariants
and scans everything the run published for every secret access key IAM issued.

The exit status is 1 if any run failed, left a user that needed action for a later run, passed a limit, broke an
invariant or leaked a secret.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from emulator.cli import parameter_override
from emulator.runner import Emulator

import decisions  # noqa: E402  (on sys.path through the emulator package, as in the Lambda runtime)

from . import fleet, measure, projection
from .measure import CHILD_EVENT_LIMIT, PARENT_EVENT_LIMIT, PAYLOAD_LIMIT_BYTES, Figures

START = "2026-01-05T06:00:00Z"
SENDER = "key-rotation@example.com"
RECIPIENT = "platform-team@example.com"
DEFAULT_FLEETS = (1_000, 10_000, 100_000)
DEFAULT_FIRST_INSTALL = 10_000


@dataclass
class Result:
    figures: Figures
    projection: projection.Projection
    expected: dict[str, int]  # what the seeded fleet called for, by docs/how-it-decides.md's rules: rotate, retire, blocked, unchanged
    parameters: dict[str, str]

    def problems(self) -> list[str]:
        f, found = self.figures, []
        if f.status != "SUCCEEDED":
            found.append(f"the run ended {f.status}")
        if f.summary.get("deferredUsers") or f.summary.get("failed"):
            found.append(f"{f.summary.get('deferredUsers')} users deferred, {f.summary.get('failed')} failed")
        if f.summary.get("rotated", 0) < self.expected.get("rotate", 0):
            found.append(f"rotated {f.summary.get('rotated')} of the {self.expected['rotate']} users due")
        if f.parent_events >= PARENT_EVENT_LIMIT:
            found.append(f"the run's history has {f.parent_events:,} events (bound {PARENT_EVENT_LIMIT:,})")
        if f.largest_child_events >= CHILD_EVENT_LIMIT:
            found.append(f"child {f.largest_child} has {f.largest_child_events:,} events (limit {CHILD_EVENT_LIMIT:,})")
        if f.largest_payload.bytes > PAYLOAD_LIMIT_BYTES:
            found.append(f"a payload of {f.largest_payload.bytes:,} bytes ({f.largest_payload.where})")
        found += f.invariant_violations
        if f.leaks:
            found.append(f"{f.leaks} published texts hold a secret access key")
        return found


def bench(size: int, first_install: bool, overrides: dict[str, str], seed: int, assume: projection.Assumptions) -> Result:
    fixture = {
        "start": START,
        "parameters": {"SenderEmail": SENDER, "NotificationEmails": RECIPIENT, **overrides},
        "verifiedEmails": [SENDER],
    }
    with Emulator(fixture) as aws:
        parameters = aws.deployment.parameters
        policy = decisions.Policy.from_days(
            int(parameters["MaxKeyAgeDays"]), int(parameters["InstallWindowDays"]), int(parameters["RecoveryWindowDays"])
        )
        specs = (fleet.make_first_install if first_install else fleet.make_fleet)(size, policy, seed)
        started = time.perf_counter()
        fleet.seed_fleet(specs, aws.clock.now, parameters, policy)
        seeding = time.perf_counter() - started
        label = f"first install, {size:,} users all due" if first_install else f"{size:,} users"
        figures = measure.figures(aws, label, seeding)
        measure.function_configs(aws, figures.functions)
        return Result(figures, projection.project(figures, parameters, assume), dict(fleet.expected_outcomes(specs, policy)), parameters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", type=_sizes, default=DEFAULT_FLEETS, help="managed users of each steady account (default 1000,10000,100000)")
    parser.add_argument("--first-install", type=int, default=DEFAULT_FIRST_INSTALL, help="users of the first-install account, all due (default 10000; 0: none)")
    parser.add_argument("--param", action="append", default=[], type=parameter_override, metavar="NAME=VALUE", help="a template parameter")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iam-rate", type=float, default=projection.Assumptions.iam_rate, help="IAM requests a second the account sustains (default 20)")
    parser.add_argument("--latency-ms", type=float, default=projection.Assumptions.latency * 1000, help="per AWS call (default 50)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    assume = projection.Assumptions(iam_rate=args.iam_rate, latency=args.latency_ms / 1000)
    overrides = dict(args.param)

    cases = [(size, False) for size in args.fleets] + ([(args.first_install, True)] if args.first_install else [])
    results = []
    for size, first in cases:
        print(f"bench: {'first install of ' if first else ''}{size:,} users ...", file=sys.stderr, flush=True)
        results.append(bench(size, first, overrides, args.seed, assume))
    if args.json:
        print(measure.dumps([{"figures": r.figures, "projection": r.projection, "expected": r.expected, "problems": r.problems()} for r in results]))
    else:
        print_results(results, assume)
    return 1 if any(r.problems() for r in results) else 0


def print_results(results: list[Result], assume: projection.Assumptions) -> None:
    p = results[0].parameters
    print(f"One scheduled run per account, with the defaults (ParallelBatches {p['ParallelBatches']}, ParallelUsers "
          f"{p['ParallelUsers']}, MaxUsersPerRun {p['MaxUsersPerRun']}); a quarter of a steady account's users need action.\n")
    rows = [
        ("Run", lambda r: r.figures.status),
        ("Rotated / retired / blocked", lambda r: "{:,} / {:,} / {:,}".format(*(r.figures.summary.get(k, 0) for k in ("rotated", "retired", "blocked")))),
        ("Left for a later run", lambda r: f"{r.figures.summary.get('deferredUsers', 0):,}"),
        (f"Run's history events (bound {PARENT_EVENT_LIMIT:,})", lambda r: f"{r.figures.parent_events:,}"),
        ("Child executions", lambda r: f"{r.figures.children:,}"),
        (f"Largest child's events (limit {CHILD_EVENT_LIMIT:,})", lambda r: f"{r.figures.largest_child_events:,}"),
        (f"Largest payload (bound {PAYLOAD_LIMIT_BYTES // 1024} KiB)", lambda r: f"{r.figures.largest_payload.bytes / 1024:.1f} KiB"),
        ("States entered per rotated user (target 8)", lambda r: _per(r, "rotate", r.figures.states_per_user)),
        ("AWS calls per untouched user: own + shared (target 1)", _untouched_calls),
        ("Invariants held, no secret published", lambda r: "yes" if not (r.figures.invariant_violations or r.figures.leaks) else "NO"),
        ("Emulator: seeding / the run", lambda r: f"{r.figures.seconds_seeding:.0f} s / {r.figures.seconds_run:.0f} s"),
        ("AWS, projected: the run", lambda r: _duration(r.projection.seconds_total)),
        ("AWS, projected: cost of the run", lambda r: f"${r.projection.run_usd:,.2f}"),
        ("AWS, projected: a month of daily runs", lambda r: f"${r.projection.month_usd:,.2f}"),
    ]
    header = [""] + [r.figures.fleet for r in results]
    table = [[name] + [cell(r) for r in results] for name, cell in rows]
    widths = [max(len(line[i]) for line in [header] + table) for i in range(len(header))]
    for n, line in enumerate([header] + table):
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line)))
        if n == 0:
            print("  ".join("-" * w for w in widths))

    last = results[-1] if not results[-1].figures.fleet.startswith("first") else results[0]
    print(f"\nStates entered per user, by what the run did ({last.figures.fleet}):")
    for cls, states in last.figures.states_per_user.items():
        calls = last.figures.calls_per_user.get(cls, 0)
        print(f"  {cls:<12}{states:6.1f} states  {calls:5.1f} AWS calls  ({last.figures.users_by_class.get(cls, 0):,} users)")
    print(f"  {'untouched':<12}{0:6.1f} states  {last.figures.calls_per_untouched_user:5.2f} AWS calls  "
          f"({last.figures.users_by_class.get('untouched', 0):,} users)")
    print(f"\nAWS calls by operation ({last.figures.fleet}):")
    for op, n in last.figures.calls_by_operation.items():
        print(f"  {op:<40}{n:>10,}")
    print(f"\nProjected on AWS, {last.figures.fleet}: planning {_duration(last.projection.seconds_planning)}, "
          f"acting {_duration(last.projection.seconds_acting)}; cost by service: "
          + ", ".join(f"{k} ${v:,.2f}" for k, v in last.projection.usd_by_service.items()))
    print(f"A month of daily runs at {last.projection.month_users:,} users: "
          + ", ".join(f"{k} ${v:,.2f}" for k, v in last.projection.month_usd_by_part.items())
          + f"; the secrets themselves ${last.projection.secrets_storage_month_usd:,.0f}.")
    print(f"\nAssumptions (bench/projection.py): IAM sustains {assume.iam_rate:g} requests a second; {assume.latency * 1000:g} ms "
          f"per AWS call, {assume.transition * 1000:g} ms per state transition; us-east-1 list prices.")
    for r in results:
        for problem in r.problems():
            print(f"PROBLEM ({r.figures.fleet}): {problem}")


def _untouched_calls(r: Result) -> str:
    """The calls that name an untouched user (its ListAccessKeys), and its share of the bulk reads and batches."""
    f = r.figures
    if not f.users_by_class.get("untouched"):
        return "- (none)"
    return f"{f.own_calls_per_untouched_user:.2f} + {f.calls_per_untouched_user - f.own_calls_per_untouched_user:.3f}"


def _per(r: Result, cls: str, table: dict[str, float]) -> str:
    return f"{table[cls]:.1f}" if cls in table else "-"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes as whole numbers, comma-separated (1000,10000)") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return sizes



if __name__ == "__main__":
    sys.exit(main())
