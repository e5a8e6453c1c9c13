"""The account and each run as plain data: what the report's tables print and what --json holds.

Read once into dicts, so that the tables for people and the JSON document for scripts cannot disagree. What a
parallel Map did comes in a fixed order (its emails, its child executions, its iterations' states), not in the
order its threads happened to finish, so that two runs of the same fixture print the same.
"""

from __future__ import annotations

import decisions

from . import account, history, stack
from .runner import Email, Emulator, Run

HUB = stack.ACCOUNT_ID


def account_state(aws: Emulator, users: list[str], account_id: str = HUB, specs: list[dict] | None = None) -> list[dict]:
    """Each user's keys (oldest first) and its secret's staged versions, for the tables and --json; ``specs``: the
    fixture's users of that account (the hub's by default)."""
    state = []
    for user in users:
        keys = sorted(account.keys_of(user, account_id), key=lambda k: k.created)
        secret = aws.secret_prefix + user
        versions = _secret_versions(secret, {k.id: k.status for k in keys}, account_id)
        state.append({
            "name": user,
            "managed": _managed(aws, user, account_id, specs),
            "keys": [
                {"id": k.id, "status": k.status, "created": decisions.format_time(k.created),
                 "ageDays": (aws.clock.now - k.created).days}
                for k in keys
            ],
            "secret": secret if versions else None,
            "secretVersions": versions,
        })
    return state


def _secret_versions(secret: str, key_statuses: dict[str, str], account_id: str = HUB) -> list[dict]:
    return [
        {"versionId": v.version_id, "stages": list(v.stages), "keyId": v.key_id,
         "keyStatus": key_statuses.get(v.key_id, "deleted") if v.key_id else None}
        for v in account.secret_versions(secret, account_id)
    ]


def _managed(aws: Emulator, user: str, account_id: str = HUB, specs: list[dict] | None = None) -> bool:
    p = aws.deployment.parameters
    path = next(u for u in (aws.fixture["users"] if specs is None else specs) if u["name"] == user).get("path", "/")
    return decisions.is_managed(path, account.tags_of(user, account_id), p["UserPath"], p["UserTagKey"], p["UserTagValue"])


def member_states(aws: Emulator) -> dict[str, dict]:
    """Each member account of the fixture's organization, by name: its id and its users' state (account_state)."""
    return {
        name: {"id": account_id, "users": account_state(aws, [u["name"] for u in specs], account_id, specs)}
        for name, account_id, specs in aws.member_users()
    }


def run_record(aws: Emulator, run: Run, execution_input, day: int | None) -> dict:
    """One run for --json: its input and outcome, the keys it changed, its secrets' versions and its emails (the
    hub's account's users at the top, each member account's under memberAccounts)."""
    members = {
        name: {"id": account_id, **_keys_and_versions(aws, run, account_id, [u["name"] for u in specs])}
        for name, account_id, specs in aws.member_users()
    }
    return {
        "name": run.name,
        "day": day,
        "time": run.time,
        "input": execution_input,
        "status": run.status,
        "error": run.error,
        "cause": run.cause,
        "output": run.output,
        "statesEntered": states_entered(run),
        **_keys_and_versions(aws, run, HUB, aws.users),
        "emails": [
            {"source": e.source, "recipients": e.destinations, "subject": e.subject, "body": e.body}
            for e in emails_in_order(aws, run)
        ],
        **({"memberAccounts": members} if members else {}),
    }


def _keys_and_versions(aws: Emulator, run: Run, account_id: str, users: list[str]) -> dict:
    """The run's keys of ``users`` of one account, before and after, and their secrets' versions after it."""
    state = run.accounts[account_id]
    versions = {u: _secret_versions(aws.secret_prefix + u, state.keys_after[u], account_id) for u in users}
    return {
        "keys": {u: {"before": state.keys_before[u], "after": state.keys_after[u]} for u in users},
        "secretVersions": {u: v for u, v in versions.items() if v},
    }


def emails_in_order(aws: Emulator, run: Run) -> list[Email]:
    """The run's emails, the report to the team (NotificationEmails) first, then the owners' by recipient: a
    parallel Map sends the owners' emails, in whatever order its threads finish."""
    team = [address.strip() for address in aws.deployment.parameters.get("NotificationEmails", "").split(",")]
    team = [address for address in team if address]
    return sorted(run.emails, key=lambda e: (e.destinations != team, e.destinations, e.subject, e.body))


def children_in_order(run: Run) -> list:
    """The run's child executions, each Distributed Map's in the order of its items (a child's name ends with
    its item's index), not in the order they finished."""
    map_runs = list(dict.fromkeys(c.map_run_arn for c in run.children))
    return sorted(run.children, key=lambda c: (map_runs.index(c.map_run_arn), c.name))


def states_entered(run: Run) -> list[str]:
    """Every state the run entered: its own, then each child execution's in the order of their items; in each
    history, an inline Map's iterations one whole iteration after another in the order of their items (they run
    at once, and their events interleave differently on every run)."""
    histories = [run.events] + [child.events for child in children_in_order(run)]
    return [name for events in histories for name in history.states_entered(_iterations_in_turn(events))]


def _iterations_in_turn(events: list[dict]) -> list[dict]:
    """A history's events with its outermost inline Map's iterations, where the first one starts, one whole
    iteration after another."""
    iterations = history.iterations(events)
    in_an_iteration = {e["id"] for found in iterations.values() for e in found}
    ordered, placed = [], False
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] not in in_an_iteration:
            ordered.append(event)
        elif not placed:
            ordered += [e for index in sorted(iterations) for e in iterations[index]]
            placed = True
    return ordered
