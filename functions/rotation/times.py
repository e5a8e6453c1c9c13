"""How the rules read, round and write times, and word durations: ISO-8601 with a zone in, IAM's whole seconds,
"YYYY-MM-DDTHH:MM:SSZ" out, and "N days" / "N hours" in the reasons people read.

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers; callers use
``decisions.parse_time`` and the like.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone


def parse_time(value: str) -> datetime:
    """ISO-8601 with a zone (``Z`` or an offset) to an aware UTC datetime; ValueError otherwise."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", value):
        raise ValueError(f"not an ISO-8601 time: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no zone: end it with Z for UTC")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 with an offset: outside what a datetime holds in UTC
        raise ValueError(f"time {value!r} is out of range") from None


def iam_seconds(moment: datetime) -> datetime:
    """A moment as IAM reports times such as CreateDate: to the whole second, rounded down."""
    return moment.replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


def _hours_or_days(delta: timedelta) -> str:
    hours = delta / timedelta(hours=1)
    return f"{hours:.0f} hours" if hours < 48 else _days(delta)
