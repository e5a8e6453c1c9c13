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

A key's ``inSecret`` stores it in the user's secret the way the workflow does (a version named for the key, and the
user's ``key-rotation:secret`` tag); ``inactiveDaysAgo`` writes the inactive-since tag the workflow keeps for
Inactive keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import decisions

from . import cross_account
from .stack import ACCOUNT_ID, REGION
from .stack import client as _hub_client


def client_in(service: str, account_id: str = ACCOUNT_ID):
    """The emulator's own client in an account: the hub's (the default account), or a member's, as its
    OrganizationAccountAccessRole."""
    return _hub_client(service) if account_id == ACCOUNT_ID else cross_account.client_in(account_id, service)


def _iam_backend(account_id: str = ACCOUNT_ID):
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["global"]


def backdate_key(user: str, key_id: str, created: datetime, account_id: str = ACCOUNT_ID) -> None:
    """IAM sets CreateDate itself; the emulator may set it to any moment, as the fixture says."""
    for key in _iam_backend(account_id).get_user(user).access_keys:
        if key.access_key_id == key_id:
            key.create_date = created.astimezone(timezone.utc).replace(tzinfo=None)
            return
    raise KeyError(f"user {user} has no key {key_id}")


def backdate_secret(secret_name: str, changed: datetime, account_id: str = ACCOUNT_ID) -> None:
    """Secrets Manager sets LastChangedDate itself; a key the fixture says the workflow stored was stored when the
    workflow created it, so its secret last changed then."""
    from moto.secretsmanager.models import secretsmanager_backends

    secretsmanager_backends[account_id][REGION].secrets[secret_name].last_changed_date = int(changed.timestamp())


def use_key(key_id: str, when: datetime, service: str = "s3", region: str = "us-east-1", account_id: str = ACCOUNT_ID) -> None:
    """A consumer signed a request with ``key_id`` at ``when``: what GetAccessKeyLastUsed then reports."""
    from moto.iam.models import AccessKeyLastUsed

    key = _iam_backend(account_id).access_keys[key_id]
    key.last_used = AccessKeyLastUsed(timestamp=when.astimezone(timezone.utc).replace(tzinfo=None), service=service, region=region)


def store_key_as_workflow_does(user: str, secret_name: str, key_id: str, secret_access_key: str, account_id: str = ACCOUNT_ID) -> None:
    sm = client_in("secretsmanager", account_id)
    value = json.dumps({"Version": 1, "UserName": user, "AccessKeyId": key_id, "SecretAccessKey": secret_access_key})
    token = decisions.key_version_id(key_id)
    try:
        sm.put_secret_value(SecretId=secret_name, ClientRequestToken=token, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=secret_name, ClientRequestToken=token, SecretString=value)
    client_in("iam", account_id).tag_user(UserName=user, Tags=[{"Key": decisions.SECRET_TAG, "Value": secret_name}])


def seed(fixture: dict, now: datetime, secret_name_prefix: str, account_id: str = ACCOUNT_ID) -> dict[str, datetime]:
    """Create the fixture's account (or a member account's users). Returns the keys a consumer keeps using
    (``usedUntilDay``): key id -> until."""
    consumers = {}
    iam = client_in("iam", account_id)
    ses = client_in("ses", account_id)
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
            backdate_key(name, key["AccessKeyId"], created, account_id)
            if spec.get("inSecret"):
                store_key_as_workflow_does(name, secret_name_prefix + name, key["AccessKeyId"], key["SecretAccessKey"], account_id)
                backdate_secret(secret_name_prefix + name, created, account_id)
            if spec.get("status", "Active") != "Active":
                iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
            if "lastUsed" in spec or "lastUsedHoursAgo" in spec:  # a consumer signed with it then
                used = (
                    decisions.parse_time(spec["lastUsed"]) if "lastUsed" in spec else now - timedelta(hours=spec["lastUsedHoursAgo"])
                )
                use_key(key["AccessKeyId"], used, spec.get("lastUsedBy", "s3"), account_id=account_id)
            if "usedUntilDay" in spec:  # a consumer signs with it every hour until then (Emulator.start)
                consumers[key["AccessKeyId"]] = now + timedelta(days=spec["usedUntilDay"])
            if "inactiveDaysAgo" in spec:
                since = decisions.format_time(now - timedelta(days=spec["inactiveDaysAgo"]))
                iam.tag_user(UserName=name, Tags=[{"Key": decisions.inactive_since_tag(key["AccessKeyId"]), "Value": since}])
    return consumers


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


def keys_of(user: str, account_id: str = ACCOUNT_ID) -> list[KeyState]:
    """The user's keys, as ListAccessKeys lists them (from moto's store, as account_keys)."""
    return [
        KeyState(k.access_key_id, k.status, k.create_date.replace(tzinfo=timezone.utc))
        for k in _iam_backend(account_id).get_user(user).access_keys
    ]


def tags_of(user: str, account_id: str = ACCOUNT_ID) -> dict[str, str]:
    iam = client_in("iam", account_id)
    return {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}


def secret_versions(secret_name: str, account_id: str = ACCOUNT_ID) -> list[SecretVersion]:
    """The secret's versions that carry a stage, newest stage first; [] when the secret does not exist."""
    sm = client_in("secretsmanager", account_id)
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


def secret_value(secret_name: str, stage: str = "AWSCURRENT", account_id: str = ACCOUNT_ID) -> dict:
    """Test harness only: the stored credentials, to check they match the version that names them."""
    sm = client_in("secretsmanager", account_id)
    return json.loads(sm.get_secret_value(SecretId=secret_name, VersionStage=stage)["SecretString"])


@dataclass(frozen=True)
class SecretState:
    """A workflow secret as a run leaves it: what its AWSCURRENT version is and names."""

    current_version: str | None
    current_key: str | None  # the key id the version names; None for a value the workflow did not write
    deleted: bool  # scheduled for deletion
    staged_keys: frozenset[str] = frozenset()  # the key ids its staged versions (AWSCURRENT, AWSPREVIOUS) name


def account_keys(account_id: str = ACCOUNT_ID) -> dict[str, dict[str, str]]:
    """Every IAM user's keys as {user: {key id: status}}, users by IAM's spelling. Read from moto's store, not
    through the API: the harness's reads neither trip an injected fault nor take time on the clock."""
    return {user.name: {k.access_key_id: k.status for k in user.access_keys} for user in list(_iam_backend(account_id).users.values())}


def run_records(bucket: str, prefix: str) -> dict[str, str]:
    """Every object under ``prefix`` in the run bucket, as text, by key (from moto's store, as above)."""
    from moto.s3.models import s3_backends

    objects = s3_backends[ACCOUNT_ID]["aws"].buckets[bucket].keys
    return {key: objects[key].value.decode() for key in sorted(objects.keys()) if key.startswith(prefix)}


def users_in_scope(path: str, tag_key: str, tag_value: str, account_id: str = ACCOUNT_ID) -> dict[str, dict[str, str]]:
    """The users decisions.is_managed counts in, with their tags (from moto's store, as above)."""
    backend = _iam_backend(account_id)
    found = {}
    for user in list(backend.users.values()):
        tags = backend.tagger.get_tag_dict_for_resource(user.arn)
        if decisions.is_managed(user.path, tags, path, tag_key, tag_value):
            found[user.name] = tags
    return found


def workflow_secrets(prefix: str, account_id: str = ACCOUNT_ID) -> dict[str, SecretState]:
    """Every secret under the prefix, scheduled for deletion or not, by name (from moto's store, as above)."""
    from moto.secretsmanager.models import secretsmanager_backends

    found = {}
    for secret in list(secretsmanager_backends[account_id][REGION].secrets.values()):
        if not secret.name.startswith(prefix):
            continue
        stages = {version_id: v["version_stages"] for version_id, v in secret.versions.items()}
        current = next((v for v, st in stages.items() if "AWSCURRENT" in st), None)
        found[secret.name] = SecretState(
            current,
            decisions.key_id_from_version_id(current) if current else None,
            secret.deleted_date is not None,
            frozenset(filter(None, (decisions.key_id_from_version_id(v) for v, st in stages.items() if st))),
        )
    return found


def secret_holds_a_working_key(name: str, state: SecretState | None, keys: dict[str, dict[str, str]], prefix: str) -> bool:
    """Invariant 1 for one secret: its AWSCURRENT names an Active key of its user (the user its name is for,
    whatever the letter case), and it is not on its way out."""
    if state is None or state.deleted or state.current_key is None:
        return False
    spelled = name[len(prefix) :]
    if spelled in keys:  # the user as the secret spells it; otherwise by IAM's rule, whatever the case
        return keys[spelled].get(state.current_key) == "Active"
    user = decisions.user_key(spelled)
    return any(decisions.user_key(u) == user and ks.get(state.current_key) == "Active" for u, ks in keys.items())


def secret_value_matches(name: str, prefix: str, account_id: str = ACCOUNT_ID) -> bool:
    """AWSCURRENT's value holds the key its version names, for the user the secret is named for (read from moto's
    store, as above)."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account_id][REGION].secrets[name]
    version_id, version = next((v, d) for v, d in secret.versions.items() if "AWSCURRENT" in d["version_stages"])
    try:
        value = json.loads(version.get("secret_string") or "")
    except ValueError:
        return False
    user = value.get("UserName") if isinstance(value, dict) else None
    return (
        isinstance(user, str)
        and value.get("AccessKeyId") == decisions.key_id_from_version_id(version_id)
        and decisions.user_key(user) == decisions.user_key(name[len(prefix) :])
    )
