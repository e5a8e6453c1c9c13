"""What a measured run would take and cost on AWS, at the stack's parameters, under stated assumptions.

The emulator answers every call in microseconds and IAM never throttles it, so its wall time says nothing about
AWS's. The projection counts what AWS would do, from the measured run (calls per phase, Lambda invocations and
the calls each made, state transitions), and prices it:

- IAM answers at most ``iam_rate`` requests a second for the account (AWS publishes no figure: IAM throttles
  with token buckets per API; 20 a second is our conservative reading of what accounts sustain). Every IAM call
  of a phase waits its turn: a phase takes at least its IAM calls / iam_rate;
- any AWS call takes ``latency`` seconds, a state transition ``transition`` seconds;
- a phase's work runs ParallelBatches x ParallelUsers at a time: a phase takes at least its per-user chain of
  calls and transitions, users / concurrency times over;
- Lambda bills each invocation's calls at the latency, as many at once as the invocation ran (its most in
  flight), plus ``LAMBDA_OVERHEAD`` seconds.

Prices: us-east-1 list prices, December 2026 (below). Monthly figures are for a daily run in steady state: every
user read once a day, and 3 / (the rotation age: MaxKeyAgeDays - InstallWindowDays - 3) of the users acted on a day (rotated, deactivated, deleted), each at
the measured run's average cost of acting on one user.
"""

from __future__ import annotations

from dataclasses import dataclass

import decisions  # noqa: E402  (on sys.path through the emulator package, as in the Lambda runtime)

from .measure import PLANNING, Figures

PRICE_PER_TRANSITION = 0.025 / 1_000  # Step Functions Standard, child executions of a Distributed Map included
PRICE_PER_GB_SECOND_ARM64 = 0.0000133334  # Lambda, arm64 (the template's Architectures)
PRICE_PER_LAMBDA_REQUEST = 0.20 / 1_000_000
PRICE_PER_SECRETS_CALL = 0.05 / 10_000  # Secrets Manager API calls
PRICE_PER_SECRET_MONTH = 0.40
PRICE_PER_S3_PUT = 0.005 / 1_000  # PUT, COPY, POST, LIST
PRICE_PER_S3_GET = 0.0004 / 1_000
PRICE_PER_KMS_REQUEST = 0.03 / 10_000  # each Secrets Manager write and read of a value, each S3 object
PRICE_PER_EMAIL = 0.10 / 1_000  # SES
DAYS_PER_MONTH = 30
LAMBDA_OVERHEAD = 0.05  # seconds an invocation takes besides its calls



@dataclass(frozen=True)
class Assumptions:
    iam_rate: float = 20.0  # IAM requests per second the account sustains
    latency: float = 0.05  # seconds per AWS call
    transition: float = 0.03  # seconds per state transition


@dataclass
class Projection:
    seconds_planning: float
    seconds_acting: float
    seconds_total: float
    run_usd: float
    usd_by_service: dict[str, float]
    month_users: int
    month_usd: float
    month_usd_by_part: dict[str, float]
    secrets_storage_month_usd: float


def project(run: Figures, parameters: dict[str, str], assume: Assumptions = Assumptions()) -> Projection:
    concurrency = int(parameters["ParallelBatches"]) * int(parameters["ParallelUsers"])
    acted = _acted(run)
    iam = {phase: sum(n for op, n in ops.items() if op.startswith("iam:")) for phase, ops in run.calls_by_phase.items()}

    # Planning: Plan the run reads in bulk, one page after another; then every user's reads, bounded by IAM's rate.
    reads_per_user = sum(run.calls_by_phase["planning"].values()) / max(1, run.managed_users)
    seconds_planning = _function_seconds(run, "PlanRun", assume) + max(
        iam["planning"] / assume.iam_rate, run.managed_users * reads_per_user * assume.latency / concurrency
    )
    # Acting: each user's chain of transitions and calls, concurrency at a time, bounded by IAM's rate.
    chains = sum(
        users * (run.states_per_user.get(c, 0) * assume.transition + run.calls_per_user.get(c, 0) * assume.latency)
        for c, users in acted.items()
    )
    seconds_acting = max(iam["acting"] / assume.iam_rate, chains / concurrency)
    seconds_rest = 20 * assume.transition + _function_seconds(run, "Report", assume)  # the run's own states, the report

    usd = _usd_by_service(run, assume)
    split = _split(run, usd, assume)
    users, acted_users = run.managed_users, sum(acted.values())
    rotation_days = int(parameters["MaxKeyAgeDays"]) - int(parameters["InstallWindowDays"]) - decisions.COMPLIANCE_MARGIN.days
    per_day_acted = 3 * users / rotation_days
    month = {
        "reading every user daily": DAYS_PER_MONTH * split["reading"],
        "acting on the users due each day": DAYS_PER_MONTH * per_day_acted * split["acting"] / max(1, acted_users),
        "the run's fixed part": DAYS_PER_MONTH * split["fixed"],
    }
    return Projection(
        seconds_planning=seconds_planning,
        seconds_acting=seconds_acting,
        seconds_total=seconds_planning + seconds_acting + seconds_rest,
        run_usd=sum(usd.values()),
        usd_by_service=usd,
        month_users=users,
        month_usd=sum(month.values()),
        month_usd_by_part=month,
        secrets_storage_month_usd=users * PRICE_PER_SECRET_MONTH,
    )


def _acted(run: Figures) -> dict[str, int]:
    return {c: k for c, k in run.users_by_class.items() if c != "untouched"}


def _function_seconds(run: Figures, name: str, assume: Assumptions) -> float:
    f = run.functions.get(name)
    if not f or not f.invocations:
        return 0.0
    return f.calls / f.invocations * assume.latency / max(1, f.longest_in_flight) + LAMBDA_OVERHEAD


def _lambda_usd(run: Figures, names, assume: Assumptions) -> float:
    usd = 0.0
    for name in names:
        f = run.functions.get(name)
        if not f or not f.invocations:
            continue
        seconds = f.calls * assume.latency / max(1, f.longest_in_flight) + f.invocations * LAMBDA_OVERHEAD
        usd += seconds * f.memory_mb / 1024 * PRICE_PER_GB_SECOND_ARM64 + f.invocations * PRICE_PER_LAMBDA_REQUEST
    return usd


def _usd_by_service(run: Figures, assume: Assumptions) -> dict[str, float]:
    ops = run.calls_by_operation
    secrets = sum(n for op, n in ops.items() if op.startswith("secretsmanager:"))
    values = sum(n for op, n in ops.items() if op in ("secretsmanager:PutSecretValue", "secretsmanager:CreateSecret", "secretsmanager:GetSecretValue"))
    s3_puts = sum(n for op, n in ops.items() if op.startswith("s3:") and not op.startswith(("s3:Get", "s3:Head")))
    s3_gets = sum(n for op, n in ops.items() if op.startswith(("s3:Get", "s3:Head")))
    s3_objects = ops.get("s3:PutObject", 0) + s3_gets
    return {
        "Step Functions": run.states_entered * PRICE_PER_TRANSITION,
        "Lambda": _lambda_usd(run, run.functions, assume),
        "Secrets Manager": secrets * PRICE_PER_SECRETS_CALL,
        "S3": s3_puts * PRICE_PER_S3_PUT + s3_gets * PRICE_PER_S3_GET,
        "KMS": (values + s3_objects) * PRICE_PER_KMS_REQUEST,
        "SES": ops.get("ses:SendEmail", 0) * PRICE_PER_EMAIL,
    }


def _split(run: Figures, usd: dict[str, float], assume: Assumptions) -> dict[str, float]:
    """The run's cost in three parts: reading every user (the planning functions and child executions), acting
    on the users that needed it (the acting child executions, the functions they invoke, their Secrets Manager
    calls), and the rest (the run's own states, the report, the emails)."""
    planning, acting = run.calls_by_phase["planning"], run.calls_by_phase["acting"]
    secrets_acting = sum(n for op, n in acting.items() if op.startswith("secretsmanager:"))
    secrets_planning = sum(n for op, n in planning.items() if op.startswith("secretsmanager:"))
    acting_usd = (
        run.states_by_part.get("acting", 0) * PRICE_PER_TRANSITION
        + _lambda_usd(run, [n for n in run.functions if n not in PLANNING and n != "Report"], assume)
        + secrets_acting * (PRICE_PER_SECRETS_CALL + PRICE_PER_KMS_REQUEST)
    )
    reading_usd = (
        run.states_by_part.get("planning", 0) * PRICE_PER_TRANSITION
        + _lambda_usd(run, PLANNING, assume)
        + secrets_planning * PRICE_PER_SECRETS_CALL
    )
    fixed = max(0.0, sum(usd.values()) - acting_usd - reading_usd)
    return {"reading": reading_usd, "acting": acting_usd, "fixed": fixed}
