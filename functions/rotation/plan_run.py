"""Plan the run: the first Task. Read-only on IAM and Secrets Manager; writes the users to plan to the run bucket.

Event (the state machine's Parameters): ``{"input": <execution input>, "startTime": ..., "execution": <ARN>,
"executionName": ..., "stateMachine": <ARN>}``. Result: a contract.RunPlan.

It makes sure no earlier run is still running (single flight), validates the input, lists every user with its tags
in bulk (GetAccountAuthorizationDetails, a thousand a call) and every secret under the prefix (ListSecrets), and
writes the users the run must plan, in batches, to ``runs/<execution name>/users-to-plan.json``: the managed users,
and the users the workflow once managed (their secret says so) that left the scope or were deleted. Their keys
are read later, batch by batch, so this Lambda's time grows with the account only by a call per thousand users.
"""

from __future__ import annotations

import logging
from datetime import timezone

import decisions
import reading
import run_records
from contract import BatchToPlan, RunPlan, SecretView, UserToPlan
from settings import Settings

logger = logging.getLogger()
logger.setLevel(logging.INFO)


class RunInProgress(Exception):
    """An earlier run of this state machine is still running: this run changes nothing."""


InvalidInput = decisions.InvalidInput
InvalidConfiguration = decisions.InvalidConfiguration


def handler(event, context):
    settings = Settings.from_env()
    ensure_single_flight(reading.client("stepfunctions"), event["stateMachine"], event["execution"], event["startTime"])
    return plan_run(event, settings, reading.client("iam"), reading.client("secretsmanager"), reading.client("s3"))


def ensure_single_flight(stepfunctions, state_machine_arn: str, execution_arn: str, start_time: str) -> None:
    """Raise RunInProgress when a run that started before this one is still running.

    Every run asks before it changes anything, and only the earliest running run goes on: of two overlapping
    runs (the schedule and an on-demand run), the later one stops with nothing changed.
    """
    running = [
        e
        for page in stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        )
        for e in page["executions"]
    ]
    # This run's own start time, not its listing: ListExecutions is eventually consistent and may not list it yet.
    mine = (decisions.parse_time(start_time), execution_arn)
    earlier = [
        e
        for e in running
        if e["executionArn"] != execution_arn and (e["startDate"].astimezone(timezone.utc), e["executionArn"]) < mine
    ]
    if earlier:
        first = min(earlier, key=lambda e: e["startDate"])
        raise RunInProgress(
            f"run {first['name']} (started {decisions.format_time(first['startDate'])}) is still running, and two "
            "runs at once could rotate a user twice, so this run changed nothing. The next scheduled run picks up "
            "whatever is left; to run now, wait until that run ends (aws stepfunctions describe-execution)."
        )


def plan_run(event: dict, settings: Settings, iam, secretsmanager, s3) -> RunPlan:
    settings.policy.check()
    request = decisions.parse_run_request(event.get("input", {}), event.get("startTime"))
    secrets = reading.workflow_secrets(secretsmanager, settings.secret_name_prefix)
    if request.users:
        users = _requested_users(iam, settings, request.users, secrets)
    else:
        users = _every_user_to_plan(iam, settings, secrets)
    managed = sum(u["managed"] for u in users)
    logger.info("%d managed users, %d that left rotation with a secret, in batches", managed, len(users) - managed)

    name = event["executionName"]
    folder = f"runs/{name}/"
    batches = [
        BatchToPlan(
            batch=n, users=batch, time=decisions.format_time(request.time),
            recordedAt=decisions.format_time(request.recorded_at), force=request.force,
        )
        for n, batch in enumerate(run_records.in_batches(users))
    ]
    key = run_records.write_json(s3, settings.bucket, folder + "users-to-plan.json", batches)
    return RunPlan(
        name=name,
        time=decisions.format_time(request.time),
        recordedAt=decisions.format_time(request.recorded_at),
        force=request.force,
        dryRun=request.dry_run or settings.dry_run,
        scheduled=request.scheduled,
        bucket=settings.bucket,
        folder=folder,
        usersToPlan=key,
        plansPrefix=folder + "plans",
        actsPrefix=folder + "acts",
        ownerEmailsPrefix=folder + "owner-emails-sent",
        batches=len(batches),
        managedUsers=managed,
        parallelBatches=settings.parallel_batches,
        parallelUsers=settings.parallel_users,
    )


def _every_user_to_plan(iam, settings: Settings, secrets: dict) -> list[UserToPlan]:
    """Every managed user, and every user (or user name) a secret of the workflow stands for that is no longer
    managed: its rotation may be half done."""
    planned, seen = [], set()
    for name, path, tags in reading.every_user(iam):
        seen.add(decisions.user_key(name))
        secret = reading.secret_of(name, secrets, settings.secret_name_prefix)
        if decisions.is_managed(path, tags, settings.user_path, settings.user_tag_key, settings.user_tag_value):
            planned.append(_to_plan(name, tags, secret, settings))
        elif secret.exists:
            why = (
                f"the user was moved to path {path}, outside UserPath {settings.user_path}"
                if not path.startswith(settings.user_path)
                else f"the user no longer carries the tag {settings.user_tag_key}={settings.user_tag_value}"
            )
            planned.append(_to_plan(name, tags, secret, settings, why=why))
    for key, found in sorted(secrets.items()):
        if key not in seen:
            for secret in found:  # no user of that name any more
                user = secret.name[len(settings.secret_name_prefix) :]
                planned.append(_to_plan(user, {}, secret, settings, why="the user no longer exists", exists=False))
    return planned


def _requested_users(iam, settings: Settings, names, secrets: dict) -> list[UserToPlan]:
    """The users an on-demand run names; any that does not exist or is outside the scope rejects the run."""
    found, problems = [], []
    for name in names:
        user = reading.named_user(iam, name)
        if user is None:
            problems.append(f"no IAM user is named {name}")
        elif decisions.is_managed(user[1], user[2], settings.user_path, settings.user_tag_key, settings.user_tag_value):
            found.append(_to_plan(user[0], user[2], reading.secret_of(user[0], secrets, settings.secret_name_prefix), settings))
        else:
            problems.append(f"user {name} is not managed by this stack (it manages {settings.scope()})")
    if problems:
        raise InvalidInput("; ".join(problems) + ". Nothing was changed.")
    return found


def _to_plan(name: str, tags: dict, secret: decisions.Secret, settings: Settings, why: str = "", exists: bool = True) -> UserToPlan:
    """What a batch's planner needs of a user: only the tags a decision reads (the item stays small)."""
    kept = {
        k: v
        for k, v in tags.items()
        if k.startswith(decisions.WORKFLOW_TAG_PREFIX) or k == settings.owner_tag_key or k in decisions.OVERRIDE_TAGS
    }
    item = UserToPlan(
        user=name,
        managed=not why,
        tags=kept,
        tagCount=len(tags),
        secret=SecretView(
            name=secret.name,
            exists=secret.exists,
            keyId=secret.key_id,
            foreign=secret.foreign,
            deleted=secret.scheduled_for_deletion,
        ),
    )
    if why:
        item["why"] = why
    if not exists:
        item["exists"] = False
    return item
