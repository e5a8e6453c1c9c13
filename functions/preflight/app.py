"""The pre-flight Lambda: a thin shell around decisions.py and report.py. Read-only, and it never reads a
secret value.

Phases, each called by the state machine:
- ``{"phase": "plan", "input": <execution input>, "startTime": "...", "execution": arn, "stateMachine": arn}``
  makes sure no earlier run is still running (single flight), reads the managed users, their keys, tags and
  secret metadata, and returns the plan: what each user needs, at most MaxUsersPerRun users, oldest keys first.
- ``{"phase": "key-status", "user": ..., "keyId": ...}``: "Active", "Inactive" or "Missing", asked just
  before a key is deleted (a person may have re-activated it since the plan).
- ``{"phase": "reconcile", "user", "secretName", "knownKeyIds", "since"}``: after a failed create or store,
  which new key the secret holds after all, and which unstored keys to delete.
- ``{"phase": "report", "plan": ..., "results": [...]}`` turns the plan and the per-user results into the
  run's summary and email text.
Configuration comes from environment variables set by template.yaml.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timezone

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import decisions  # the Lambda runtime puts this directory on sys.path; the emulator and tests do too
import report

logger = logging.getLogger()
logger.setLevel(logging.INFO)

InvalidInput = decisions.InvalidInput
InvalidConfiguration = decisions.InvalidConfiguration

# IAM publishes no throttle numbers: retry throttling and service errors with exponential backoff and jitter.
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
# Users read at once while planning: 10,000 users at ~3 calls each finish in minutes, not IAM's patience.
READ_CONCURRENCY = 8
# The plan travels in the execution's state (256 KiB): lists that grow with the account are cut here, and
# counted in full.
MAX_LISTED = 25


class RunInProgress(Exception):
    """An earlier run of this state machine is still running: this run changes nothing."""


@dataclass(frozen=True)
class Settings:
    policy: decisions.Policy
    user_path: str
    user_tag_key: str
    user_tag_value: str
    secret_name_prefix: str
    dry_run: bool
    sender_email: str
    notification_emails: tuple[str, ...]
    max_users_per_run: int = 150
    parallel_users: int = 5
    consumer_principal_arn: str = ""
    owner_tag_key: str = ""
    owner_email_domains: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        return cls(
            policy=decisions.Policy.from_days(
                int(env["MAX_KEY_AGE_DAYS"]),
                int(env["INSTALL_WINDOW_DAYS"]),
                int(env["RECOVERY_WINDOW_DAYS"]),
                int(env.get("NOTICE_DAYS", "0")),
            ),
            user_path=env.get("USER_PATH", "/"),
            user_tag_key=env.get("USER_TAG_KEY", ""),
            user_tag_value=env.get("USER_TAG_VALUE", ""),
            secret_name_prefix=env.get("SECRET_NAME_PREFIX", ""),
            dry_run=env.get("DRY_RUN", "false").lower() == "true",
            sender_email=env.get("SENDER_EMAIL", ""),
            notification_emails=tuple(e.strip() for e in env.get("NOTIFICATION_EMAILS", "").split(",") if e.strip()),
            max_users_per_run=int(env.get("MAX_USERS_PER_RUN", "150")),
            parallel_users=int(env.get("PARALLEL_USERS", "5")),
            consumer_principal_arn=env.get("CONSUMER_PRINCIPAL_ARN", ""),
            owner_tag_key=env.get("OWNER_TAG_KEY", ""),
            owner_email_domains=tuple(d.strip().lower() for d in env.get("OWNER_EMAIL_DOMAINS", "").split(",") if d.strip()),
        )

    def scope(self) -> str:
        tag = f" tagged {self.user_tag_key}={self.user_tag_value}" if self.user_tag_key else ""
        return f"users under path {self.user_path}{tag}"


def handler(event, context):
    phase = event.get("phase") if isinstance(event, dict) else None
    settings = Settings.from_env()
    if phase == "report":
        return report.build(event, settings)
    iam, secretsmanager = boto3.client("iam", config=AWS_CONFIG), boto3.client("secretsmanager", config=AWS_CONFIG)
    if phase == "plan":
        if event.get("stateMachine"):
            ensure_single_flight(
                boto3.client("stepfunctions", config=AWS_CONFIG), event["stateMachine"], event["execution"], event["startTime"]
            )
        return plan_run(event, settings, iam, secretsmanager)
    if phase == "key-status":
        return {"status": _key_status(iam, event["user"], event["keyId"])}
    if phase == "reconcile":
        keys, _, _ = _keys(iam, event["user"], {})
        stored, unstored = decisions.keys_to_clean_up(
            set(event["knownKeyIds"]),
            keys,
            _secret(secretsmanager, event["secretName"]),
            decisions.parse_time(event["since"]),
        )
        logger.info("user %s: after a failed rotation, stored %s, unstored %s", event["user"], stored, unstored)
        return {"storedKeyId": stored, "deleteKeyIds": unstored}
    raise InvalidInput(f"unknown phase {phase!r}: the event must hold a phase: plan, key-status, reconcile or report")


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


def plan_run(event: dict, settings: Settings, iam, secretsmanager) -> dict:
    settings.policy.check()
    request = decisions.parse_run_request(event.get("input", {}), event.get("startTime"))
    unreadable: list[dict] = []
    if request.users:
        users = _requested_users(iam, settings, request.users, unreadable)
    else:
        users = _managed_users(iam, settings, unreadable)
    secrets = _workflow_secrets(secretsmanager, settings.secret_name_prefix)

    def decide(user):
        try:
            return decide_one(user)
        except (ClientError, BotoCoreError) as error:  # after boto3's retries: this user waits, the others go on
            unreadable.append({"user": user[0], "reason": _unreadable_reason(error)})
            return None

    def decide_one(user):
        name, tags = user
        keys, obsolete_tags, tags = _keys(iam, name, tags)
        if tags is None and request.force:  # a forced first key: the secret's tag must fit too
            tags = _tags(iam, name)
        secret = replace(_secret_of(name, secrets, settings.secret_name_prefix), recorded=(tags or {}).get(decisions.SECRET_TAG))
        decision = decisions.decide(
            name,
            keys,
            secret,
            request.time,
            settings.policy,
            force=request.force,
            obsolete_tags=obsolete_tags,
            tag_keys=frozenset(tags) if tags is not None else None,
            recorded_at=request.recorded_at,
        )
        if settings.consumer_principal_arn and decision.outcome not in ("blocked", "attention") and (
            (decision.rotate or secret.exists) and _needs_grant(secretsmanager, secret.name, settings.consumer_principal_arn)
        ):
            decision.grant_consumer = True
            if decision.outcome == "unchanged":
                decision.outcome = "grant"
                decision.reason = f"{settings.consumer_principal_arn} gets read access to the secret (ConsumerPrincipalArn)"
        logger.info("user %s: %s (%s)", name, decision.outcome, decision.reason)
        owner = None
        if settings.owner_tag_key and (decision.outcome != "unchanged" or decision.notices):
            owner = _owner(tags if tags is not None else _tags(iam, name), settings)
        return decision, secret.name, keys, owner

    planned = list(users)
    if request.users is None:  # a scheduled run also looks after the users its secrets say it once managed
        in_scope = {decisions.user_key(name) for name, _ in users} | {decisions.user_key(u["user"]) for u in unreadable}
        orphans = [s for key, found in sorted(secrets.items()) if key not in in_scope for s in found]
    else:
        orphans = []

    actions, blocked, attention, notices, unchanged = [], [], [], [], 0
    with ThreadPoolExecutor(READ_CONCURRENCY) as pool:
        for decided in pool.map(decide, planned):
            if decided is None:
                continue
            decision, secret_name, keys, owner = decided
            owned = {"owner": owner} if owner else {}
            if decision.notices and owner:  # notices are for owners only
                notices.append({"user": decision.user, "notices": decision.notices, **owned})
            if decision.outcome == "blocked":  # a blocked user has no actions: it is left as it is
                blocked.append({"user": decision.user, "reason": decision.reason, **owned})
            elif decision.outcome == "attention":
                attention.append({"user": decision.user, "reason": decision.reason, **owned})
            elif decision.has_actions:
                item = {**report.plan_item(decision, secret_name, [k.id for k in keys]), **owned}
                if decision.grant_consumer:
                    item["grantConsumer"] = True
                oldest = min((k.created for k in keys), default=request.time)
                actions.append((oldest, item))
            else:
                unchanged += 1
        for left in pool.map(lambda secret: _left_rotation(iam, settings, secret, unreadable), orphans):
            if left is not None:
                decision, owner = left
                attention.append({"user": decision.user, "reason": decision.reason, **({"owner": owner} if owner else {})})

    # The per-run cap: the most overdue users first; the rest wait for the next runs.
    actions.sort(key=lambda pair: (pair[0], pair[1]["user"]))
    deferred = [item["user"] for _, item in actions[settings.max_users_per_run :]]
    return {
        "time": decisions.format_time(request.time),
        "dryRun": request.dry_run or settings.dry_run,
        "scheduled": request.scheduled,
        "parallelUsers": settings.parallel_users,
        "managedUsers": len(users),
        "unchangedUsers": unchanged,
        "actions": [item for _, item in actions[: settings.max_users_per_run]],
        "blocked": blocked[:MAX_LISTED],
        "blockedUsers": len(blocked),
        "attention": sorted(attention, key=lambda u: u["user"])[:MAX_LISTED],
        "attentionUsers": len(attention),
        "unreadable": sorted(unreadable, key=lambda u: u["user"])[:MAX_LISTED],
        "unreadableUsers": len(unreadable),
        "notices": notices[:MAX_LISTED],
        "deferredUsers": len(deferred),
    }


def _workflow_secrets(secretsmanager, prefix: str) -> dict[str, list[decisions.Secret]]:
    """Every secret under the prefix (scheduled for deletion included), by the user key of the name after the
    prefix: one paged ListSecrets for the whole account instead of a DescribeSecret per user."""
    found: dict[str, list[decisions.Secret]] = {}
    pages = secretsmanager.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True
    )
    for page in pages:
        for listed in page["SecretList"]:
            if listed["Name"].startswith(prefix):  # the filter matches a prefix; the name may not hold a user
                user = listed["Name"][len(prefix) :]
                found.setdefault(decisions.user_key(user), []).append(_secret_from(listed, "SecretVersionsToStages"))
    return found


def _secret_of(name: str, secrets: dict[str, list[decisions.Secret]], prefix: str) -> decisions.Secret:
    """The user's secret: the one named for it, or one named for another spelling of its name (IAM names ignore
    case: a user renamed from app to App keeps the secret its consumers read), or the one a rotation creates."""
    exact = prefix + name
    found = secrets.get(decisions.user_key(name), [])
    return next((s for s in found if s.name == exact), None) or (found[0] if found else decisions.Secret(name=exact))


def _left_rotation(iam, settings: Settings, secret: decisions.Secret, unreadable: list) -> tuple | None:
    """A secret the workflow keeps for a user it no longer manages: (the attention decision, the owner), or None."""
    name = secret.name[len(settings.secret_name_prefix) :]
    if secret.key_id is None or secret.scheduled_for_deletion:
        return None  # not the workflow's value, or on its way out: nothing it promised
    try:
        user = iam.get_user(UserName=name)["User"]
    except iam.exceptions.NoSuchEntityException:
        return decisions.left_rotation(name, None, secret, "the user no longer exists"), None
    except (ClientError, BotoCoreError) as error:
        unreadable.append({"user": name, "reason": _unreadable_reason(error)})
        return None
    tags = {t["Key"]: t["Value"] for t in user.get("Tags", [])}
    if not user["Path"].startswith(settings.user_path):
        why = f"the user was moved to path {user['Path']}, outside UserPath {settings.user_path}"
    elif settings.user_tag_key and tags.get(settings.user_tag_key) != settings.user_tag_value:
        why = f"the user no longer carries the tag {settings.user_tag_key}={settings.user_tag_value}"
    else:
        return None  # managed after all (it appeared since the users were listed): the next run plans it
    try:
        keys, _, _ = _keys(iam, user["UserName"], tags)
    except (ClientError, BotoCoreError) as error:
        unreadable.append({"user": name, "reason": _unreadable_reason(error)})
        return None
    decision = decisions.left_rotation(user["UserName"], keys, secret, why)
    if decision is None:
        return None
    logger.info("user %s: %s (%s)", decision.user, decision.outcome, decision.reason)
    return decision, _owner(tags, settings) if settings.owner_tag_key else None


# The statement the workflow writes (statemachine/rotation.asl.json, "Consumer policy").
CONSUMER_STATEMENT_SID = "ConsumerReadsTheKey"


def _needs_grant(secretsmanager, secret_name: str, principal: str) -> bool:
    """Whether the workflow should write the consumer's policy on this secret: when it has none, or has only the
    workflow's own statement for another principal. A policy someone else wrote is never overwritten."""
    try:
        text = secretsmanager.get_resource_policy(SecretId=secret_name).get("ResourcePolicy")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return True  # the rotation creates the secret
        raise
    if not text:
        return True
    statements = json.loads(text).get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    if any(s.get("Sid") != CONSUMER_STATEMENT_SID for s in statements):
        logger.info("secret %s has a resource policy the workflow did not write: left as it is", secret_name)
        return False
    return not any(s.get("Principal") == {"AWS": principal} and s.get("Effect") == "Allow" for s in statements)


def _owner(tags: dict, settings: Settings) -> str | None:
    """The address in the user's owner tag, if it is one (and in OwnerEmailDomains, when that is set)."""
    value = (tags or {}).get(settings.owner_tag_key, "").strip()
    if not decisions.EMAIL_PATTERN.fullmatch(value):
        return None
    domain = value.rsplit("@", 1)[1].lower()
    if settings.owner_email_domains and domain not in settings.owner_email_domains:
        logger.info("owner address %s is outside OwnerEmailDomains: not used", value)
        return None
    return value


def _unreadable_reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        code, message = error.response["Error"].get("Code"), error.response["Error"].get("Message")
    else:  # a timeout or a broken connection
        code, message = type(error).__name__, str(error)
    return (
        f"could not be read ({code}: {message}) even after retries, so nothing was changed for this user; "
        "the next run tries again"
    )


def _managed_users(iam, settings: Settings, unreadable: list) -> list[tuple[str, dict | None]]:
    """Every managed user as (name, tags); tags are read only where a tag decides. A user whose tags cannot be
    read is added to ``unreadable``: it waits for the next run, and the others go on."""
    listed = [u for page in iam.get_paginator("list_users").paginate(PathPrefix=settings.user_path) for u in page["Users"]]

    def with_tags(user):
        try:
            return user, _tags(iam, user["UserName"]) if settings.user_tag_key else None
        except ClientError as error:
            if user["Path"].startswith(settings.user_path):  # whether it is managed is unknown: say so
                unreadable.append({"user": user["UserName"], "reason": _unreadable_reason(error)})
            return user, False

    with ThreadPoolExecutor(READ_CONCURRENCY) as pool:
        return [
            (user["UserName"], tags)
            for user, tags in pool.map(with_tags, listed)
            if tags is not False
            and decisions.is_managed(
                user["Path"], tags or {}, settings.user_path, settings.user_tag_key, settings.user_tag_value
            )
        ]


def _requested_users(iam, settings: Settings, names, unreadable: list) -> list[tuple[str, dict | None]]:
    """The users an on-demand run names; any that does not exist or is outside the scope rejects the run."""
    found, problems = [], []
    for name in names:
        try:
            user = iam.get_user(UserName=name)["User"]
        except iam.exceptions.NoSuchEntityException:
            problems.append(f"no IAM user is named {name}")
            continue
        except ClientError as error:
            if error.response["Error"]["Code"] != "AccessDenied":
                unreadable.append({"user": name, "reason": _unreadable_reason(error)})
                continue
            # This function may read only users under UserPath: any other name is denied, existing or not.
            problems.append(f"no user named {name} under the managed path {settings.user_path}")
            continue
        tags = {t["Key"]: t["Value"] for t in user.get("Tags", [])}
        if decisions.is_managed(user["Path"], tags, settings.user_path, settings.user_tag_key, settings.user_tag_value):
            found.append((user["UserName"], tags))  # IAM names are case-insensitive: use IAM's spelling
        else:
            problems.append(f"user {name} is not managed by this stack (it manages {settings.scope()})")
    if problems:
        raise InvalidInput("; ".join(problems) + ". Nothing was changed.")
    return found


def _tags(iam, name: str) -> dict:
    tags = {}
    for page in iam.get_paginator("list_user_tags").paginate(UserName=name):
        tags.update({t["Key"]: t["Value"] for t in page["Tags"]})
    return tags


def _keys(iam, name: str, tags: dict | None) -> tuple[list[decisions.Key], tuple[str, ...], dict | None]:
    """The user's keys, the key ids whose inactive-since tag is obsolete (key re-activated or gone), and the
    user's tags (read here if not given and the user has keys; None if never read)."""
    pages = iam.get_paginator("list_access_keys").paginate(UserName=name)
    metadata = [k for page in pages for k in page["AccessKeyMetadata"]]
    inactive_ids = {k["AccessKeyId"] for k in metadata if k["Status"] != "Active"}
    if tags is None and metadata:
        tags = _tags(iam, name)  # a user without keys has no inactive-since tag that matters
    inactive_since = decisions.parse_inactive_since_tags(tags or {})
    keys = [
        decisions.Key(
            id=k["AccessKeyId"],
            active=k["AccessKeyId"] not in inactive_ids,
            created=k["CreateDate"],
            inactive_since=inactive_since.get(k["AccessKeyId"]),
        )
        for k in metadata
    ]
    return keys, tuple(sorted(set(inactive_since) - inactive_ids)), tags


def _key_status(iam, user: str, key_id: str) -> str:
    keys, _, _ = _keys(iam, user, {})
    key = next((k for k in keys if k.id == key_id), None)
    return "Missing" if key is None else "Active" if key.active else "Inactive"


def _secret(secretsmanager, name: str) -> decisions.Secret:
    try:
        described = secretsmanager.describe_secret(SecretId=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return decisions.Secret(name=name)
        raise
    return _secret_from(described, "VersionIdsToStages")


def _secret_from(metadata: dict, stages_field: str) -> decisions.Secret:
    """A secret as DescribeSecret (VersionIdsToStages) or ListSecrets (SecretVersionsToStages) describes it."""
    current_version = next(
        (vid for vid, stages in metadata.get(stages_field, {}).items() if "AWSCURRENT" in stages), None
    )
    # A secret created empty (no AWSCURRENT yet) holds no key: the next rotation gives it one.
    key_id = decisions.key_id_from_version_id(current_version) if current_version else None
    return decisions.Secret(
        exists=True,
        key_id=key_id,
        foreign=current_version is not None and key_id is None,
        scheduled_for_deletion=metadata.get("DeletedDate") is not None,
        name=metadata["Name"],
    )
