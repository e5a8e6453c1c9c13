"""The account and each run as plain data: what the report's tables print and what --json holds.

Read once into dicts, so that the tables for people and the JSON document for scripts cannot disagree.
"""

from __future__ import annotations

import decisions

from . import account
from .runner import Emulator, Run


def account_state(aws: Emulator, users: list[str]) -> list[dict]:
    """Each user's keys (oldest first) and its secret's staged versions, for the tables and --json."""
    state = []
    for user in users:
        keys = sorted(account.keys_of(user), key=lambda k: k.created)
        secret = aws.secret_prefix + user
        versions = _secret_versions(secret, {k.id: k.status for k in keys})
        state.append({
            "name": user,
            "managed": _managed(aws, user),
            "keys": [
                {"id": k.id, "status": k.status, "created": decisions.format_time(k.created),
                 "ageDays": (aws.clock.now - k.created).days}
                for k in keys
            ],
            "secret": secret if versions else None,
            "secretVersions": versions,
        })
    return state


def _secret_versions(secret: str, key_statuses: dict[str, str]) -> list[dict]:
    return [
        {"versionId": v.version_id, "stages": list(v.stages), "keyId": v.key_id,
         "keyStatus": key_statuses.get(v.key_id, "deleted") if v.key_id else None}
        for v in account.secret_versions(secret)
    ]


def _managed(aws: Emulator, user: str) -> bool:
    p = aws.deployment.parameters
    path = next(u for u in aws.fixture["users"] if u["name"] == user).get("path", "/")
    return decisions.is_managed(path, account.tags_of(user), p["UserPath"], p["UserTagKey"], p["UserTagValue"])


def run_record(aws: Emulator, run: Run, execution_input, day: int | None) -> dict:
    """One run for --json: its input and outcome, the keys it changed, its secrets' versions and its emails."""
    secrets = {}
    for user in aws.users:
        versions = _secret_versions(aws.secret_prefix + user, run.keys_after[user])
        if versions:
            secrets[user] = versions
    return {
        "name": run.name,
        "day": day,
        "time": run.time,
        "input": execution_input,
        "status": run.status,
        "error": run.error,
        "cause": run.cause,
        "output": run.output,
        "statesEntered": run.states_entered(),
        "keys": {u: {"before": run.keys_before[u], "after": run.keys_after[u]} for u in aws.users},
        "secretVersions": secrets,
        "emails": [
            {"source": e.source, "recipients": e.destinations, "subject": e.subject, "body": e.body} for e in run.emails
        ],
    }
