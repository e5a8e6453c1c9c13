"""make soak: the rotation over months (emulator/model.py), explored far longer than make test does.

Runs batches of Hypothesis examples until at least --steps steps were taken, then prints what was explored: examples,
steps by kind, runs by status, users by outcome. A broken invariant stops it with the failing example as a short
program (save it as a test in tests/test_model.py) and exit status 1. Not part of make test: it takes minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from emulator.model import EXPLORED, OrganizationModel, RotationModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="explore at least this many steps (default 10,000)")
    parser.add_argument("--steps-per-example", type=int, default=50, help="the longest a month-long story runs (default 50)")
    parser.add_argument("--organization", action="store_true",
                        help="a hub managing its organization: its own account, a member account, sometimes one without the member stack")
    arguments = parser.parse_args(argv)
    # The model injects AWS errors outside the services' models (Throttling); moto warns each time.
    warnings.filterwarnings("ignore", message=r"Exception\(.*\) with code .* does not match an error shape")

    began = time.monotonic()
    budget = settings(
        max_examples=20,
        stateful_step_count=arguments.steps_per_example,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    try:
        while sum(EXPLORED.steps.values()) < arguments.steps:
            run_state_machine_as_test(OrganizationModel if arguments.organization else RotationModel, settings=budget)
            print(f"  ... {sum(EXPLORED.steps.values()):,} steps, {EXPLORED.runs:,} runs", file=sys.stderr, flush=True)
    except Exception:
        _report(began, failed=True, organization=arguments.organization)
        raise
    _report(began, failed=False, organization=arguments.organization)
    return 0


def _report(began: float, failed: bool, organization: bool) -> None:
    minutes = (time.monotonic() - began) / 60
    print(f"\nmake soak{' (an organization)' if organization else ''}: {EXPLORED.examples:,} examples, {sum(EXPLORED.steps.values()):,} steps, {EXPLORED.runs:,} runs "
          f"in {minutes:.1f} min: " + ("AN INVARIANT BROKE (the failing example is above)" if failed else "every invariant held"))
    print("\nSteps taken:")
    for kind, count in EXPLORED.steps.most_common():
        print(f"  {kind:<26}{count:>8,}")
    print("\nRuns ended:")
    for status, count in EXPLORED.statuses.most_common():
        print(f"  {status:<26}{count:>8,}")
    print("\nUsers in the runs' reports, by outcome:")
    for outcome, count in EXPLORED.outcomes.most_common():
        print(f"  {outcome:<26}{count:>8,}")


if __name__ == "__main__":
    sys.exit(main())
