"""What IAM's credential report says of each user's keys: whether each of its two key slots holds an Active key,
and when that key was created. No key ids: the report never names them.

The report (GetCredentialReport) is CSV, one row per user. For each slot, ``access_key_N_active`` is ``true`` for
an Active key, and ``access_key_N_last_rotated`` is the key's creation time, or ``N/A`` when the slot holds no
Active key: IAM documents N/A for an Inactive key too, so an Inactive key may not show at all. The rules that
read this (decisions.untouched_by_report) therefore never take it as proof that a user has no Inactive key.

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from naming import user_key
from times import parse_time

NOT_APPLICABLE = "N/A"
ROOT_ROW = "<root_account>"  # the account's root user: not an IAM user


@dataclass(frozen=True)
class ReportedKey:
    active: bool
    created: datetime | None  # None where the report says N/A


@dataclass(frozen=True)
class ReportedUser:
    name: str
    keys: tuple[ReportedKey, ...]  # the slots that show a key (Active, or with a date)


def parse_credential_report(text: str) -> dict[str, ReportedUser]:
    """Each IAM user of the report, by its user key (names are unique whatever their letter case). A row this
    code cannot read for certain is left out, and its user is then read key by key, as one the report does not
    list: a row with more or fewer fields than the header (a name holding a comma, written unquoted), one whose
    ARN does not end in its name, one whose dates do not parse, and every row of a name listed twice."""
    users, seen_twice = {}, set()
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("user") or ""
        if not name or name == ROOT_ROW or None in row or None in row.values():
            continue
        if not str(row.get("arn", "")).endswith("/" + name):
            continue
        try:
            keys = tuple(key for slot in (1, 2) if (key := _slot(row, slot)) is not None)
        except (KeyError, ValueError):
            continue
        key = user_key(name)
        if key in users or key in seen_twice:
            seen_twice.add(key)
            users.pop(key, None)
            continue
        users[key] = ReportedUser(name, keys)
    return users


def _slot(row: dict, slot: int) -> ReportedKey | None:
    active = row[f"access_key_{slot}_active"].strip().lower() == "true"
    rotated = row[f"access_key_{slot}_last_rotated"].strip()
    created = None if rotated in ("", NOT_APPLICABLE) else parse_time(rotated)
    if not active and created is None:
        return None
    return ReportedKey(active, created)
