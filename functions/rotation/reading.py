"""What the functions read from IAM and Secrets Manager: metadata only, never a secret value.

Every read retries throttling and service errors with exponential backoff and jitter (boto3's standard mode:
IAM publishes no throttle numbers).
"""

from __future__ import annotations

import functools
import json
import logging

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import decisions

logger = logging.getLogger()

AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
# The statement the workflow writes (statemachine/rotation.asl.json, "Consumer policy").
CONSUMER_STATEMENT_SID = "ConsumerReadsTheKey"
# GetAccountAuthorizationDetails pages: the most IAM returns at once.
USERS_PER_PAGE = 1000
READ_ERRORS = (ClientError, BotoCoreError)


@functools.lru_cache(maxsize=None)
def client(service: str):
    """One client per service for the function's life (clients are thread-safe; a warm Lambda reuses them)."""
    return boto3.client(service, config=AWS_CONFIG)


def unreadable_reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        code, message = error.response["Error"].get("Code"), error.response["Error"].get("Message")
    else:  # a timeout or a broken connection
        code, message = type(error).__name__, str(error)
    return (
        f"could not be read ({code}: {message}) even after retries, so nothing was changed for this user; "
        "the next run tries again"
    )


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
    )


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
