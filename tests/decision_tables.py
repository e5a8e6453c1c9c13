"""Shared builders for the tests of functions/rotation/decisions.py: a fixed clock, the template's default
policy, keys and secrets in one call each, and the table row format (``case``, ``want``, ``got``). Not a test
module: tests/test_decisions*.py import it."""

from datetime import datetime, timedelta, timezone

import pytest

from decisions import Key, LastUse, Policy, Secret

NOW = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
POLICY = Policy.from_days(90, 7, 7)  # the template's defaults: MaxKeyAge, InstallWindow, RecoveryWindow
SHORT = Policy.from_days(30, 2, 3)


def ago(days, hours=0):
    return NOW - timedelta(days=days, hours=hours)


def active(key_id, days, hours=0, used_hours_ago=None):
    """An Active key created ``days`` (and ``hours``) ago, last used ``used_hours_ago`` hours ago (None: never; its
    last use is read, as the planner reads it for a key due for deactivation)."""
    used = LastUse(None) if used_hours_ago is None else LastUse(NOW - timedelta(hours=used_hours_ago), "s3", "eu-west-1")
    return Key(key_id, True, ago(days, hours), last_use=used)


def inactive(key_id, days, since=None):
    """An Inactive key created ``days`` ago, with an inactive-since tag ``since`` days ago (None: untagged)."""
    return Key(key_id, False, ago(days), None if since is None else ago(since))


def holds(key_id, **flags):
    return Secret(exists=True, key_id=key_id, **flags)


FOREIGN = Secret(exists=True, foreign=True)


def want(outcome, *, rotate=False, previous=None, deactivate=None, delete=None, record=(), forget=()):
    return {
        "outcome": outcome,
        "rotate": rotate,
        "previous_key_id": previous,
        "deactivate_key_id": deactivate,
        "delete_key_id": delete,
        "record_inactive": {key_id: NOW for key_id in record},
        "forget_inactive": list(forget),
    }


def got(decision):
    return {field: getattr(decision, field) for field in want("x")}


UNCHANGED, BLOCKED, ATTENTION = want("unchanged"), want("blocked"), want("attention")


def case(case_id, keys, secret, expected, **options):
    return pytest.param(keys, secret, expected, options, id=case_id)


SECRET = "iam-key-rotation/alice"
DELETED_BY_HAND = Secret(name=SECRET, recorded=SECRET)  # the user's tag says the workflow stored a key there
