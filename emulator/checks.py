"""What the emulator checks of every run: the README's invariants, account by account, and the scan of what the
runs published for any secret access key IAM issued. Emulator.invariant_violations and Emulator.leaked_texts
call these."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import decisions

from . import account, stack

if TYPE_CHECKING:
    from .runner import Run


@dataclass
class AccountState:
    """One managed account's keys and secrets around a run (the invariants are checked account by account)."""

    keys_before: dict[str, dict[str, str]]
    secrets_before: dict[str, account.SecretState]
    keys_after: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets_after: dict[str, account.SecretState] = field(default_factory=dict)
    mismatched_values: list[str] = field(default_factory=list)


def leaked_texts(runs: tuple[Run, ...], secrets: set[str]) -> list[str]:
    """The runs' published texts that hold any of ``secrets``."""
    forty = all(len(s) == 40 for s in secrets)  # once, not per text: 100,000 keys and as many texts
    return [t for run in runs for t in run.published_texts() if _holds_any(t, secrets, forty)]


def invariant_violations(runs: tuple[Run, ...], prefix: str) -> list[str]:
    """The README's invariants for each run (see Emulator.invariant_violations); ``prefix`` is the stack's
    SecretNamePrefix."""
    problems = []
    for run in runs:
        retired = _keys_the_run_retired(run)
        told = " ".join(run.report_texts())
        for account_id, state in run.accounts.items():
            where = run.name if account_id == stack.ACCOUNT_ID else f"{run.name} in {account_id}"
            problems += _violations(where, state, retired, told, prefix)
        problems += [f"{run.name}: key {k} was deactivated before a key check" for k in _deactivated_unproven(run)]
    return problems


def _violations(where: str, state: AccountState, retired: set[str], told: str, prefix: str) -> list[str]:
    """The invariants in one account (see Emulator.invariant_violations)."""
    problems = []
    for name, before in sorted(state.secrets_before.items()):
        working = account.secret_holds_a_working_key(name, before, state.keys_before, prefix)
        if working and before.current_key in retired:
            problems.append(f"{where}: key {before.current_key}, which secret {name} holds, was retired")
    for name, after in sorted(state.secrets_after.items()):
        before = state.secrets_before.get(name)
        written = after.current_key and (before is None or before.current_version != after.current_version)
        if written and not account.secret_holds_a_working_key(name, after, state.keys_after, prefix):
            problems.append(f"{where}: secret {name}'s new AWSCURRENT is not an Active key of its user")
    problems += [f"{where}: secret {n}'s AWSCURRENT value does not hold the key its version names" for n in state.mismatched_values]

    before, after = _flat(state.keys_before), _flat(state.keys_after)
    held = set().union(*(s.staged_keys for s in state.secrets_after.values()))
    problems += [
        f"{where}: key {k} was created, and no secret holds it, nor was it deleted or reported for deletion"
        for k in sorted(set(after) - set(before) - held)
        if f"--access-key-id {k}" not in told
    ]
    problems += [f"{where}: Active key {k} was deleted" for k, s in before.items() if s == "Active" and k not in after]
    return problems


_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9/+]{40,}")  # a run of characters a secret access key may hold


def _holds_any(text: str, secrets: set[str], forty: bool) -> bool:
    """Whether any of the secrets is in ``text``. When all are 40 characters long (``forty``), as IAM issues them:
    every 40-character window of each run of key characters, looked up in the set (a substring search per secret
    takes hours at 100,000 keys)."""
    if not forty:
        return any(s in text for s in secrets)
    return any(
        run[i : i + 40] in secrets for match in _KEY_CHARACTERS.finditer(text) for run in [match.group()] for i in range(len(run) - 39)
    )


def _flat(keys: dict[str, dict[str, str]]) -> dict[str, str]:
    return {k: status for user_keys in keys.values() for k, status in user_keys.items()}


def _task_calls(history: list[dict], resource: str) -> list[tuple[int, dict]]:
    """(event index, parameters) of each SDK call ``resource`` (e.g. "updateAccessKey") a history's Tasks made."""
    return [
        (i, json.loads(e["taskScheduledEventDetails"]["parameters"]))
        for i, e in enumerate(history)
        if (e.get("taskScheduledEventDetails") or {}).get("resource") == resource
    ]


def _keys_the_run_retired(run: Run) -> set[str]:
    retired = set()
    for history in run.histories():
        retired |= {p["AccessKeyId"] for _, p in _task_calls(history, "updateAccessKey") if p.get("Status") == "Inactive"}
        retired |= {p["AccessKeyId"] for _, p in _task_calls(history, "deleteAccessKey")}
    return retired


def _deactivated_unproven(run: Run) -> list[str]:
    """Keys the run's own UpdateAccessKey deactivated with no successful key check of the user before it, in the
    same history (the user's steps run in one execution)."""
    unproven = []
    for history in run.histories():
        proven_at = {}
        for i, e in enumerate(history):
            done = e.get("taskSucceededEventDetails") or {}
            if done.get("resourceType") == "lambda" and "authenticatesAs" in (done.get("output") or ""):
                proven_at.setdefault(decisions.user_key(json.loads(done["output"])["Payload"]["user"]), i)
        unproven += [
            p["AccessKeyId"]
            for i, p in _task_calls(history, "updateAccessKey")
            if p.get("Status") == "Inactive" and proven_at.get(decisions.user_key(p["UserName"]), len(history)) > i
        ]
    return unproven
