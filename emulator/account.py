"""Seed an emulated account from a fixture, and read it back: keys, tags, secret versions, invariants.

Fixture format (JSON; see fixtures/demo-account.json)::

    {
      "start": "2026-01-05T06:00:00Z",               # the clock at seeding time (default: now)
      "parameters": {"SenderEmail": "..."},          # template parameter overrides
      "verifiedEmails": ["rotation@example.com"],    # SES identities verified in the account
      "users": [
        {"name": "ci-deployer", "path": "/", "tags": {"KeyRotation": "enabled"},
         "keys": [{"ageDays": 95, "status": "Active", "inSecret": true, "inactiveDaysAgo": 3}]}
      ]
    }

A key's ``inSecret`` stores it in the user's secret the way the workflow does (a version named for the key);
``inactiveDaysAgo`` writes the inactive-since tag the workflow keeps for Inactive keys.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import boto3
import decisions

from .stack import ACCOUNT_ID, REGION


@functools.cache
def _client(service: str):
    """One client per service for the emulator's own reads: building one costs ~8 ms, and moto intercepts
    every client's calls while its mock is active, whenever the client was made."""
    return boto3.client(service, region_name=REGION)


def _iam_backend():
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["global"]


def backdate_key(user: str, key_id: str, created: datetime) -> None:
    """IAM sets CreateDate itself; the emulator may set it to any moment, as the fixture says."""
    for key in _iam_backend().get_user(user).access_keys:
        if key.access_key_id == key_id:
            key.create_date = created.astimezone(timezone.utc).replace(tzinfo=None)
            return
    raise KeyError(f"user {user} has no key {key_id}")


def store_key_as_workflow_does(user: str, secret_name: str, key_id: str, secret_access_key: str) -> None:
    sm = _client("secretsmanager")
    value = json.dumps({"Version": 1, "UserName": user, "AccessKeyId": key_id, "SecretAccessKey": secret_access_key})
    token = decisions.key_version_id(key_id)
    try:
        sm.put_secret_value(SecretId=secret_name, ClientRequestToken=token, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=secret_name, ClientRequestToken=token, SecretString=value)


def seed(fixture: dict, now: datetime, secret_name_prefix: str) -> None:
    iam = _client("iam")
    ses = _client("ses")
    for address in fixture.get("verifiedEmails", []):
        ses.verify_email_identity(EmailAddress=address)
    for user in fixture.get("users", []):
        name = user["name"]
        iam.create_user(
            UserName=name,
            Path=user.get("path", "/"),
            Tags=[{"Key": k, "Value": v} for k, v in user.get("tags", {}).items()],
        )
        for spec in user.get("keys", []):
            key = iam.create_access_key(UserName=name)["AccessKey"]
            created = (
                decisions.parse_time(spec["created"]) if "created" in spec else now - timedelta(days=spec.get("ageDays", 0))
            )
            backdate_key(name, key["AccessKeyId"], created)
            if spec.get("inSecret"):
                store_key_as_workflow_does(name, secret_name_prefix + name, key["AccessKeyId"], key["SecretAccessKey"])
            if spec.get("status", "Active") != "Active":
                iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
            if "inactiveDaysAgo" in spec:
                since = decisions.format_time(now - timedelta(days=spec["inactiveDaysAgo"]))
                iam.tag_user(UserName=name, Tags=[{"Key": decisions.inactive_since_tag(key["AccessKeyId"]), "Value": since}])


@dataclass(frozen=True)
class KeyState:
    id: str
    status: str
    created: datetime


@dataclass(frozen=True)
class SecretVersion:
    version_id: str
    stages: tuple[str, ...]
    key_id: str | None  # from the version id; None for a version the workflow did not write


def keys_of(user: str) -> list[KeyState]:
    iam = _client("iam")
    return [
        KeyState(k["AccessKeyId"], k["Status"], k["CreateDate"])
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    ]


def tags_of(user: str) -> dict[str, str]:
    iam = _client("iam")
    return {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}


def secret_versions(secret_name: str) -> list[SecretVersion]:
    """The secret's versions that carry a stage, newest stage first; [] when the secret does not exist."""
    sm = _client("secretsmanager")
    try:
        described = sm.describe_secret(SecretId=secret_name)
    except sm.exceptions.ResourceNotFoundException:
        return []
    order = {"AWSCURRENT": 0, "AWSPREVIOUS": 1}
    versions = [
        SecretVersion(vid, tuple(stages), decisions.key_id_from_version_id(vid))
        for vid, stages in described.get("VersionIdsToStages", {}).items()
        if stages
    ]
    return sorted(versions, key=lambda v: min(order.get(s, 9) for s in v.stages))


def secret_value(secret_name: str, stage: str = "AWSCURRENT") -> dict:
    """Test harness only: the stored credentials, to check they match the version that names them."""
    sm = _client("secretsmanager")
    return json.loads(sm.get_secret_value(SecretId=secret_name, VersionStage=stage)["SecretString"])


def secret_violations(users: list[str], secret_name_prefix: str) -> list[str]:
    """Every secret the workflow wrote holds, in AWSCURRENT, an Active key of its user, and the key its
    version id names. (What a run changed is checked by Emulator.invariant_violations.)"""
    problems = []
    for user in users:
        keys = {k.id: k for k in keys_of(user)}
        current = next((v for v in secret_versions(secret_name_prefix + user) if "AWSCURRENT" in v.stages), None)
        if current is None or current.key_id is None or _scheduled_for_deletion(secret_name_prefix + user):
            continue  # no secret, one the workflow never wrote, or one on its way out: nothing it promised
        if current.key_id not in keys or keys[current.key_id].status != "Active":
            problems.append(f"{user}: AWSCURRENT holds {current.key_id}, which is not an Active key of the user")
        value = secret_value(secret_name_prefix + user)
        if value.get("AccessKeyId") != current.key_id or value.get("UserName") != user:
            problems.append(f"{user}: AWSCURRENT's value does not hold the key its version names")
    return problems


def _scheduled_for_deletion(secret_name: str) -> bool:
    sm = _client("secretsmanager")
    return "DeletedDate" in sm.describe_secret(SecretId=secret_name)

