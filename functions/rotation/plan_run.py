"""Plan the run: the first Task. Read-only on IAM and Secrets Manager; writes the users to plan to the run bucket.

Event (the state machine's Parameters): ``{"input": <execution input>, "startTime": ..., "execution": <ARN>,
"executionName": ..., "stateMachine": <ARN>}``. Result: a contract.RunPlan.

It makes sure no earlier run is still running (single flight), validates the input, lists every user with its tags
in bulk (GetAccountAuthorizationDetails, a thousand a call) and every secret under the prefix (ListSecrets), and
writes the users the run must plan, in batches, to ``runs/<execution name>/users-to-plan.json``: the managed users,
and the users the workflow once managed (their secret says so) that left the scope or were deleted. Their keys
are read later, batch by batch, so this Lambda's time grows with the account only by a call per thousand users.
A scheduled run also reads the account's credential report (IAM's one bulk read of keys, up to four hours old):
a managed user it shows needs nothing this run (decisions.untouched_by_report) is counted unchanged, and its keys
are not read at all.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone

import decisions
import reading
import run_records
import targets
from contract import AccountProblem, BatchToPlan, RunPlan, SecretView, UserToPlan
from settings import Settings

logger = logging.getLogger()
logger.setLevel(logging.INFO)


# "Plan the run" stops waiting for credential reports with this much of its time left.
REPORT_WAIT_MARGIN = 300


class RunInProgress(Exception):
    """An earlier run of this state machine is still running: this run changes nothing."""


InvalidInput = decisions.InvalidInput
InvalidConfiguration = decisions.InvalidConfiguration


def handler(event, context):
    settings = Settings.from_env()
    ensure_single_flight(reading.client("stepfunctions"), event["stateMachine"], event["execution"], event["startTime"])
    # Waiting for credential reports stops with five minutes left: the rest of the plan keeps its time.
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - REPORT_WAIT_MARGIN
    return plan_run(event, settings, reading.in_account, reading.client("s3"), reading.client("organizations"), deadline)


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


def plan_run(event: dict, settings: Settings, in_account, s3, organizations=None, deadline: float | None = None) -> RunPlan:
    """``in_account(role_arn, service, session_name)`` gives a client acting in a managed account as its member role
    (reading.in_account; the tests pass their own). No credential report is waited for past ``deadline``
    (time.monotonic())."""
    settings.policy.check()
    try:
        scope = targets.parse_targets(settings.target_accounts)
    except targets.InvalidTargets as error:
        raise InvalidConfiguration(str(error)) from None
    request = decisions.parse_run_request(event.get("input", {}), event.get("startTime"))
    found = _organization_accounts(organizations, scope, settings) if scope.reads_organization else []
    accounts, problems = targets.requested(targets.in_scope(scope, settings.account_id, found), request.accounts)
    if problems:
        raise InvalidInput("; ".join(problems) + ". Nothing was changed.")
    name = event["executionName"]

    def read(account: targets.Account):
        """(account, its users, None), or (account, why it could not be managed, whether its member role was missing
        or refused the hub: AssumeRole's AccessDenied)."""
        if account.status != targets.ACTIVE:
            return account, targets.unreachable_reason(account, "", "", settings.member_role_name, settings.account_id), False
        try:
            role = settings.member_role(account.id)  # what the state machine's Tasks will act as
            iam, secretsmanager = (
                in_account(settings.reader_role(account.id), service, reading.session_name()) for service in ("iam", "secretsmanager")
            )
            secrets = reading.workflow_secrets(secretsmanager, settings.secret_name_prefix)
            if request.users:
                return account, _requested_users(iam, settings, request.users, secrets, account.id, role), None
            report = reading.credential_report(iam, deadline) if reads_reports else None
            return account, _every_user_to_plan(iam, settings, secrets, account.id, role, report, request.time), None
        except reading.AccountUnreachable as error:
            return account, error.reason(settings, account), error.code in targets.DENIED
        except reading.READ_ERRORS as error:
            if not settings.many_accounts:
                raise  # this account only: the run fails, as it always did
            return account, (
                f"its users and secrets could not be read as role {settings.member_role_name}{targets.READER_SUFFIX} ({reading.error_text(error)}), "
                "so nothing was changed in it: check that the member stack there is member/template.yaml with the "
                "hub's UserPath and SecretNamePrefix; the next run tries again"
            ), False  # its role let the hub in: the member stack is there

    def ask_for_report(account: targets.Account) -> None:
        try:
            reading.ask_for_credential_report(in_account(settings.reader_role(account.id), "iam", reading.session_name()))
        except reading.AccountUnreachable:
            pass  # reported when its users are read

    # A scheduled run plans from each account's credential report, which IAM may take a while to write: every
    # account is asked first, so the reports are written while the others are read. (With ConsumerPrincipalArn
    # every secret's policy is read anyway, beside its user's keys.)
    reads_reports = not request.users and not settings.consumer_principal_arn
    users, unreachable, user_problems, untouched = [], [], [], 0
    with ThreadPoolExecutor(max(1, min(settings.parallel_batches, len(accounts) or 1))) as pool:
        if reads_reports:
            list(pool.map(ask_for_report, [a for a in accounts if a.status == targets.ACTIVE]))
        for account, read_users, role_missing in pool.map(read, accounts):
            if role_missing is not None:
                failing = targets.fails_the_run(account, role_missing)
                unreachable.append(AccountProblem(account=account.id, reason=read_users, failsRun=failing))
            elif request.users:
                users += read_users[0]
                user_problems += read_users[1]
            else:
                users += read_users[0]
                untouched += read_users[1]
    if request.users:
        _reject_unknown_users(request.users, users, user_problems, settings, [p["account"] for p in unreachable])
    managed = sum(u["managed"] for u in users) + untouched
    logger.info(
        "%d managed users (%d of them shown by the credential report to need nothing), %d that left rotation with a "
        "secret, in %d accounts (%d unreachable)",
        managed, untouched, len(users) - managed + untouched, len(accounts), len(unreachable),
    )

    folder = f"runs/{name}/"
    accounts_key = run_records.write_json(s3, settings.bucket, folder + "accounts.json", unreachable) if unreachable else ""
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
        untouchedUsers=untouched,
        accounts=len(accounts),
        unreachableAccounts=len(unreachable),
        unreachableAccountsKey=accounts_key,
        parallelBatches=settings.parallel_batches,
        parallelUsers=settings.parallel_users,
    )


def _every_user_to_plan(
    iam, settings: Settings, secrets: dict, account: str, role: str, report, now
) -> tuple[list[UserToPlan], int]:
    """(every managed user whose keys must be read, and every user (or user name) a secret of the workflow stands
    for that is no longer managed: its rotation may be half done; how many managed users the credential report
    ``report`` (reading.credential_report) shows need nothing at ``now``: decisions.untouched_by_report)."""
    planned, seen, untouched = [], set(), 0
    for name, path, tags in reading.every_user(iam):
        seen.add(decisions.user_key(name))
        secret = reading.secret_of(name, secrets, settings.secret_name_prefix)
        if decisions.is_managed(path, tags, settings.user_path, settings.user_tag_key, settings.user_tag_value):
            if report is not None and decisions.untouched_by_report(
                name, report.get(decisions.user_key(name)),
                dataclasses.replace(secret, recorded=tags.get(decisions.SECRET_TAG)), tags, len(tags), now, settings.policy,
            ):
                untouched += 1
                continue
            planned.append(_to_plan(name, tags, secret, settings, account, role))
        elif secret.exists:
            why = (
                f"the user was moved to path {path}, outside UserPath {settings.user_path}"
                if not path.startswith(settings.user_path)
                else f"the user no longer carries the tag {settings.user_tag_key}={settings.user_tag_value}"
            )
            planned.append(_to_plan(name, tags, secret, settings, account, role, why=why))
    for key, found in sorted(secrets.items()):
        if key not in seen:
            for secret in found:  # no user of that name any more
                user = secret.name[len(settings.secret_name_prefix) :]
                planned.append(_to_plan(user, {}, secret, settings, account, role, why="the user no longer exists", exists=False))
    return planned, untouched


def _organization_accounts(organizations, scope, settings: Settings) -> list:
    """The accounts AWS Organizations lists for TargetAccounts; a hub that may not list them is told how to fix it."""
    try:
        return reading.organization_accounts(organizations, scope)
    except reading.READ_ERRORS as error:
        if "ParentNotFound" in reading.error_text(error):
            raise InvalidConfiguration(
                f"TargetAccounts={settings.target_accounts} names an OU or root the organization does not have "
                f"({reading.error_text(error)}): fix the stack parameter (aws organizations list-roots, "
                "list-organizational-units-for-parent). Nothing was changed."
            ) from None
        raise InvalidConfiguration(
            f"TargetAccounts={settings.target_accounts} needs the accounts of the organization, and AWS Organizations "
            f"refused to list them ({reading.error_text(error)}). "
            "Run the hub in the management account, or let it list them from there: aws organizations "
            "put-resource-policy (docs/organizations.md, roll-out step 2). Nothing was changed."
        ) from None


def _requested_users(iam, settings: Settings, names, secrets: dict, account: str, role: str):
    """(the users an on-demand run names, as this account has them; what is wrong with the others)."""
    found, problems = [], []
    for name in names:
        user = reading.named_user(iam, name)
        if user is None:
            problems.append(f"no IAM user is named {name}")
        elif decisions.is_managed(user[1], user[2], settings.user_path, settings.user_tag_key, settings.user_tag_value):
            found.append(_to_plan(user[0], user[2], reading.secret_of(user[0], secrets, settings.secret_name_prefix), settings, account, role))
        else:
            problems.append(f"user {name} is not managed by this stack (it manages {settings.scope()})")
    return found, problems


def _reject_unknown_users(names, users: list[UserToPlan], problems: list[str], settings: Settings, unreached: list[str] = ()) -> None:
    """An on-demand run names users: any that does not exist or is outside the scope rejects the run; across
    accounts, each must be managed in at least one of the run's accounts. Nothing is done otherwise."""
    if not settings.many_accounts:
        if problems:
            raise InvalidInput("; ".join(problems) + ". Nothing was changed.")
        return
    planned = {decisions.user_key(u["user"]) for u in users}
    nowhere = [n for n in names if decisions.user_key(n) not in planned]
    if nowhere:
        raise InvalidInput(
            "; ".join(f"no managed IAM user is named {n} in any of the run's accounts" for n in nowhere)
            + f" (this stack manages {settings.scope()})"
            + (f"; accounts {', '.join(unreached)} could not be read, and may have them" if unreached else "")
            + ". Nothing was changed."
        )


def _to_plan(
    name: str, tags: dict, secret: decisions.Secret, settings: Settings, account: str, role: str, why: str = "",
    exists: bool = True,
) -> UserToPlan:
    """What a batch's planner needs of a user: only the tags a decision reads (the item stays small)."""
    kept = {
        k: v
        for k, v in tags.items()
        if k.startswith(decisions.WORKFLOW_TAG_PREFIX) or k == settings.owner_tag_key or k in decisions.OVERRIDE_TAGS
    }
    item = UserToPlan(
        user=name,
        account=account,
        role=role,
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
