"""What the functions read from IAM and Secrets Manager: metadata only, never a secret value.

Every read retries throttling and service errors with exponential backoff and jitter (boto3's standard mode:
IAM publishes no throttle numbers).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import decisions
import targets
from settings import Settings

logger = logging.getLogger()

AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
# The statement the workflow writes (statemachine/rotation.asl.json, "Consumer policy").
CONSUMER_STATEMENT_SID = "ConsumerReadsTheKey"
# GetAccountAuthorizationDetails pages: the most IAM returns at once.
USERS_PER_PAGE = 1000
READ_ERRORS = (ClientError, BotoCoreError)


def client(service: str):
    """One client per service for the function's life (clients are thread-safe; a warm Lambda reuses them)."""
    return _client(service, os.environ.get("AWS_ACCESS_KEY_ID"))


@functools.lru_cache(maxsize=None)
def _client(service: str, credentials: str | None):
    # Keyed by the environment's credentials too: one process that runs several functions (the emulator) must
    # not call as another function's role.
    return boto3.client(service, config=AWS_CONFIG)


# A session is renewed this long before its credentials expire (an hour after AssumeRole): a warm Lambda outlives it.
SESSION_MARGIN = timedelta(minutes=10)
# (the function's own access key, the role) -> (session, expiry, clients by service), and a lock per key, so that
# accounts are assumed in parallel and one slow AssumeRole holds up only its own account.
_sessions: dict[tuple[str | None, str], tuple[boto3.Session, datetime, dict]] = {}
_locks: dict[tuple[str | None, str], threading.Lock] = {}
_locks_lock = threading.Lock()


class AccountUnreachable(Exception):
    """The member role of an account could not be assumed."""

    def __init__(self, account: str, code: str, message: str):
        super().__init__(f"{account}: {code}: {message}")
        self.account, self.code, self.message = account, code, message

    def reason(self, settings: Settings, account: targets.Account | None = None) -> str:
        """Why the account could not be managed, and the fix (targets.unreachable_reason); ``account`` as the run's
        scope has it (the management account gets its own advice)."""
        return targets.unreachable_reason(
            account or targets.Account(self.account), self.code, self.message, settings.member_role_name,
            settings.account_id, own_roles=not settings.many_accounts,
        )


def session_name() -> str:
    """Each function's sessions in a managed account carry its name: CloudTrail there says which one acted."""
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "iam-key-rotation")


def for_event(event: dict, service: str):
    """A client reading, as the member reader role, the account an event's user is in (this account when it names
    none)."""
    settings = Settings.from_env()
    return in_account(settings.reader_role(event.get("account") or settings.account_id), service, session_name())


def forget_sessions() -> None:
    """Drop every cached member role session and client (a cold start)."""
    with _locks_lock:
        _sessions.clear()
        _locks.clear()
    _client.cache_clear()


def in_account(role_arn: str, service: str, session_name: str):
    """A client acting in the account of ``role_arn`` (the member role), as that role: the hub's every read and
    write in a managed account goes through it. Sessions are cached per role until shortly before they expire."""
    account = role_arn.split(":")[4]
    key = (os.environ.get("AWS_ACCESS_KEY_ID"), role_arn)  # each function's own sessions, as on AWS
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        cached = _sessions.get(key)
        if cached is None or cached[1] - SESSION_MARGIN < datetime.now(timezone.utc):
            try:
                answer = client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])
            except READ_ERRORS as error:
                raise AccountUnreachable(account, *error_parts(error)) from None
            credentials = answer["Credentials"]
            session = boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            cached = _sessions[key] = (session, credentials["Expiration"], {})
        session, _, clients = cached
        if service not in clients:
            clients[service] = session.client(service, config=AWS_CONFIG)
        return clients[service]


def error_parts(error: Exception) -> tuple[str, str]:
    """(code, message) of an AWS error, or of a timeout or a broken connection."""
    if isinstance(error, ClientError):
        return error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
    return type(error).__name__, str(error)


def error_text(error: Exception) -> str:
    """``Code: message`` of an AWS error, or of a timeout or a broken connection."""
    return "{}: {}".format(*error_parts(error))


def unreadable_reason(error: Exception) -> str:
    return (
        f"could not be read ({error_text(error)}) even after retries, so nothing was changed for this user; "
        "the next run tries again"
    )


# --- accounts -------------------------------------------------------------------------------------------------


def organization_accounts(organizations, scope: targets.Targets) -> list[targets.Account]:
    """Every account of the organization (ORGANIZATION), or every account anywhere below the listed OUs and roots,
    with its state and whether it is the management account (DescribeOrganization, ListAccounts,
    ListAccountsForParent, ListOrganizationalUnitsForParent)."""
    management = organizations.describe_organization()["Organization"].get("MasterAccountId")

    def account(a: dict) -> targets.Account:
        # State replaces Status (retired in September 2026); either may be the one an SDK returns.
        return targets.Account(a["Id"], a.get("State") or a.get("Status") or targets.ACTIVE, listed=False, management=a["Id"] == management)

    if scope.organization:
        pages = organizations.get_paginator("list_accounts").paginate()
        return [account(a) for p in pages for a in p["Accounts"]]
    found, parents = {}, list(scope.units)
    while parents:
        parent = parents.pop()
        for page in organizations.get_paginator("list_accounts_for_parent").paginate(ParentId=parent):
            for a in page["Accounts"]:
                found[a["Id"]] = account(a)
        for page in organizations.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent):
            parents += [unit["Id"] for unit in page["OrganizationalUnits"]]
    return list(found.values())


# --- users ----------------------------------------------------------------------------------------------------


def every_user(iam):
    """(name, path, tags) of every IAM user, a thousand per call (GetAccountAuthorizationDetails: users and their
    tags in bulk, where ListUsers would need a ListUserTags per user)."""
    pages = iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User"], PaginationConfig={"PageSize": USERS_PER_PAGE}
    )
    for page in pages:
        for user in page["UserDetailList"]:
            yield user["UserName"], user["Path"], {t["Key"]: t["Value"] for t in user.get("Tags", [])}


def named_user(iam, name: str) -> tuple[str, str, dict] | None:
    """(IAM's spelling of the name, path, tags) of one user, or None when no user has the name."""
    try:
        user = iam.get_user(UserName=name)["User"]
    except iam.exceptions.NoSuchEntityException:
        return None
    return user["UserName"], user["Path"], {t["Key"]: t["Value"] for t in user.get("Tags", [])}


def owner_of(tags: dict, tag_key: str, domains: tuple[str, ...]) -> str | None:
    """The address in the user's owner tag, if it is one (and in OwnerEmailDomains, when that is set)."""
    value = (tags or {}).get(tag_key, "").strip() if tag_key else ""
    if not decisions.EMAIL_PATTERN.fullmatch(value):
        return None
    if domains and value.rsplit("@", 1)[1].lower() not in domains:
        logger.info("owner address %s is outside OwnerEmailDomains: not used", value)
        return None
    return value


# --- keys -----------------------------------------------------------------------------------------------------


def keys_of(iam, name: str, tags: dict) -> tuple[list[decisions.Key], tuple[str, ...]]:
    """The user's keys (with their inactive-since times from ``tags``) and the key ids whose inactive-since tag
    is obsolete (the key was re-activated or is gone)."""
    pages = iam.get_paginator("list_access_keys").paginate(UserName=name)
    metadata = [k for page in pages for k in page["AccessKeyMetadata"]]
    inactive_ids = {k["AccessKeyId"] for k in metadata if k["Status"] != "Active"}
    inactive_since = decisions.parse_inactive_since_tags(tags)
    keys = [
        decisions.Key(
            id=k["AccessKeyId"],
            active=k["AccessKeyId"] not in inactive_ids,
            created=k["CreateDate"],
            inactive_since=inactive_since.get(k["AccessKeyId"]),
        )
        for k in metadata
    ]
    return keys, tuple(sorted(set(inactive_since) - inactive_ids))


def last_use(iam, key_id: str) -> decisions.LastUse:
    """When IAM last saw ``key_id`` sign a request, with which service and where (GetAccessKeyLastUsed; IAM
    reports it up to about four hours late)."""
    used = iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    return decisions.LastUse(used.get("LastUsedDate"), used.get("ServiceName", ""), used.get("Region", ""))


def key_status(iam, user: str, key_id: str) -> str:
    keys, _ = keys_of(iam, user, {})
    key = next((k for k in keys if k.id == key_id), None)
    return "Missing" if key is None else "Active" if key.active else "Inactive"


# How long to wait, between asks, while IAM writes a credential report: about five minutes in all, well inside
# "Plan the run"'s 15 (IAM publishes no figure; a report of 100,000 users may take minutes).
REPORT_WAITS = (1, 2, 4, 8, 15, 30, 60, 60, 60, 60)


def pause(seconds: float) -> None:
    """Wait while IAM writes the credential report. (The emulator's clock moves instead.)"""
    time.sleep(seconds)


def ask_for_credential_report(iam) -> None:
    """Have IAM start writing the account's credential report, so that it is ready when the plan reads it; an
    error is the plan's to meet then (credential_report)."""
    try:
        iam.generate_credential_report()
    except READ_ERRORS:
        pass


def credential_report(iam, deadline: float | None = None) -> dict[str, decisions.ReportedUser] | None:
    """Each user's keys as the account's credential report shows them: IAM's one bulk read of keys, up to four hours
    old (GenerateCredentialReport makes a new one only when the last is older).

    None when it cannot be had: not written within REPORT_WAITS or by ``deadline`` (time.monotonic()), throttled
    past the retries, refused (a member stack from before the hub read it), or not readable as a report. The plan
    then reads every user's keys, as it always could: nothing is lost but speed."""
    try:
        for wait in (*REPORT_WAITS, None):
            if iam.generate_credential_report()["State"] == "COMPLETE":
                got = iam.get_credential_report()
                content = got["Content"]
                logger.info("credential report generated at %s", got.get("GeneratedTime"))
                return decisions.parse_credential_report(content.decode("utf-8") if isinstance(content, bytes) else content)
            if wait is None or (deadline is not None and time.monotonic() + wait > deadline):
                logger.warning("the credential report was not ready in time: every user's keys are read")
                return None
            pause(wait)
    except READ_ERRORS as error:
        logger.warning("no credential report (%s): every user's keys are read", error_text(error))
    except (UnicodeDecodeError, csv.Error, AttributeError, TypeError) as error:  # not a report this code can read
        logger.warning("the credential report could not be read (%s): every user's keys are read", type(error).__name__)
    return None


# --- secrets --------------------------------------------------------------------------------------------------


def workflow_secrets(secretsmanager, prefix: str) -> dict[str, list[decisions.Secret]]:
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
                found.setdefault(decisions.user_key(user), []).append(secret_from(listed, "SecretVersionsToStages"))
    return found


def secret_of(name: str, secrets: dict[str, list[decisions.Secret]], prefix: str) -> decisions.Secret:
    """The user's secret: the one named for it, or one named for another spelling of its name (IAM names ignore
    case: a user renamed from app to App keeps the secret its consumers read), or the one a rotation creates."""
    exact = prefix + name
    found = secrets.get(decisions.user_key(name), [])
    return next((s for s in found if s.name == exact), None) or (found[0] if found else decisions.Secret(name=exact))


def described_secret(secretsmanager, name: str) -> decisions.Secret:
    try:
        described = secretsmanager.describe_secret(SecretId=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return decisions.Secret(name=name)
        raise
    return secret_from(described, "VersionIdsToStages")


def secret_from(metadata: dict, stages_field: str) -> decisions.Secret:
    """A secret as DescribeSecret (VersionIdsToStages) or ListSecrets (SecretVersionsToStages) describes it."""
    current_version = next((vid for vid, stages in metadata.get(stages_field, {}).items() if "AWSCURRENT" in stages), None)
    # A secret created empty (no AWSCURRENT yet) holds no key: the next rotation gives it one.
    key_id = decisions.key_id_from_version_id(current_version) if current_version else None
    return decisions.Secret(
        exists=True,
        key_id=key_id,
        foreign=current_version is not None and key_id is None,
        scheduled_for_deletion=metadata.get("DeletedDate") is not None,
        name=metadata["Name"],
        arn=metadata.get("ARN", ""),
        changed=_utc(metadata.get("LastChangedDate")),
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(timezone.utc) if isinstance(moment, datetime) else None


def needs_grant(secretsmanager, secret_name: str, principal: str) -> bool:
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
