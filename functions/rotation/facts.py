"""What a decision is made from and what it says: a user's keys (Key, with IAM's report of its last use, LastUse),
its secret (Secret, MISSING_SECRET), and the Decision for the user, with the outcomes that change nothing.

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers; callers use
``decisions.Key`` and the like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from times import format_time


@dataclass(frozen=True)
class LastUse:
    """What IAM reports of a key's last use (GetAccessKeyLastUsed): when (None: never), with which service, where."""

    when: datetime | None
    service: str = ""
    region: str = ""

    def describe(self) -> str:
        if self.when is None:
            return "never used"
        where = ", ".join(p for p in (self.service, self.region) if p and p != "N/A")
        return f"last used {format_time(self.when)}" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class Key:
    id: str
    active: bool
    created: datetime
    inactive_since: datetime | None = None  # from the user's inactive-since tag, if any
    last_use: LastUse | None = None  # None: not read (it is read only for a key about to be deactivated)


@dataclass(frozen=True)
class Secret:
    exists: bool = False
    # The access key id named by the AWSCURRENT version, when this workflow wrote that version.
    key_id: str | None = None
    # True when AWSCURRENT was written by someone else: which key it holds is then unknown.
    foreign: bool = False
    scheduled_for_deletion: bool = False
    name: str = ""  # where the user's key is kept (or will be)
    recorded: str | None = None  # the secret the user's SECRET_TAG names: where the workflow last stored its key
    arn: str = ""  # when it exists
    changed: datetime | None = None  # its LastChangedDate: the last time anything changed it


MISSING_SECRET = Secret()


@dataclass
class Decision:
    """What to do for one user. ``outcome`` is one of: rotate, retire, record, unchanged, and four that retire
    nothing: blocked (a rotation or retirement waits for a person's decision), attention (a person changed the
    user or its secret so that consumers may be locked out, or the workflow can no longer finish its work), held
    (the previous key is still in use, so it stays Active) and overdue (held, and older than MaxKeyAgeDays)."""

    user: str
    outcome: str
    reason: str
    rotate: bool = False
    deactivate_key_id: str | None = None
    delete_key_id: str | None = None
    # Inactive-since tags to write (key id -> time) and to remove (key ids whose tag is obsolete).
    record_inactive: dict[str, datetime] = field(default_factory=dict)
    forget_inactive: list[str] = field(default_factory=list)
    previous_key_id: str | None = None  # the key the rotation replaces; it stays Active for the install window
    # The key the secret holds, proven to authenticate before deactivate_key_id (the fallback) is deactivated.
    verify_key_id: str | None = None
    # Advance notices for the key's owner: what will happen within the notice window, and when.
    notices: list[str] = field(default_factory=list)
    grant_consumer: bool = False  # write the consumer's resource policy on the secret (ConsumerPrincipalArn)
    # Tag the user with the secret that holds its key (SECRET_TAG): for a secret stored before the tag existed.
    record_secret: str | None = None
    # A key due for deactivation whose last use must be read first (GetAccessKeyLastUsed): decide again with it.
    read_last_use: str | None = None

    @property
    def has_actions(self) -> bool:
        return bool(
            self.rotate
            or self.deactivate_key_id
            or self.delete_key_id
            or self.record_inactive
            or self.forget_inactive
            or self.grant_consumer
            or self.record_secret
        )


# Outcomes that change nothing, tags included: a person must act, (held) a consumer must stop using a key, or
# (exempt) a person exempted the user for a while.
UNCHANGED_OUTCOMES = ("blocked", "attention", "held", "overdue", "exempt")
