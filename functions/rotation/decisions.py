"""What the workflow must do for one user, decided from the user's keys, the secret and the run's time.

Pure functions: no boto3, no clock, no environment. The handler reads AWS and calls these; the tests
call them with tables of cases. Nothing here ever sees secret material: keys are known by id, status and
dates, and the secret by its metadata (which key its AWSCURRENT version holds is encoded in the version id
that the state machine writes, see ``SECRET_VERSION_PREFIX``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import targets

# The state machine stores a new key as the secret version "key-rotation-<AccessKeyId>" (a ClientRequestToken
# of 32-64 characters), so the key a secret holds is known from DescribeSecret without reading the value.
# statemachine/rotation.asl.json builds the same string; tests/test_template.py checks both.
SECRET_VERSION_PREFIX = "key-rotation-"

# Every tag the workflow writes starts with this; its role may write no other (template.yaml).
WORKFLOW_TAG_PREFIX = "key-rotation:"
# IAM records no deactivation time, so the workflow keeps it as a user tag "<prefix><AccessKeyId>" whose
# value is the ISO time the key was deactivated (or first seen Inactive). The recovery window counts from it.
INACTIVE_SINCE_TAG_PREFIX = WORKFLOW_TAG_PREFIX + "inactive-since:"

# The user tag naming the secret the workflow last stored the user's key in, written after each store: it tells
# a secret deleted by hand from one that was never created.
SECRET_TAG = WORKFLOW_TAG_PREFIX + "secret"
# IAM allows this many tags per user; the workflow's own (SECRET_TAG, inactive-since tags) count against it.
MAX_TAGS_PER_USER = 50

# IAM user names: https://docs.aws.amazon.com/IAM/latest/APIReference/API_User.html. IAM compares them
# without regard to letter case: Alice and alice are one user.
USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# Secrets Manager names take fewer characters than IAM user names (no ","): CreateSecret API reference.
SECRET_NAME_PATTERN = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# A key is created, deactivated or tagged seconds to minutes after its run's scheduled time; the run a whole
# number of days later must still count it as that many days old, or every window would slip by a day.
SCHEDULE_SLACK = timedelta(minutes=30)


def _reached(age: timedelta, window: timedelta) -> bool:
    return age + SCHEDULE_SLACK >= window


# MaxKeyAgeDays is the age no Active key may reach (Security Hub IAM.3 and CIS fail an Active key older than 90
# days). A key is rotated early enough that its predecessor, kept Active for the install window, is deactivated
# this long before it reaches MaxKeyAgeDays: room for two missed daily runs, or a consumer that needs a day more.
COMPLIANCE_MARGIN = timedelta(days=3)

# IAM reports a key's last use (GetAccessKeyLastUsed) up to about four hours late: a key is taken as unused only
# after at least this long without a reported use.
IAM_LAST_USED_DELAY = timedelta(hours=4)

# How far a given "time" may lie after the execution's start (clocks and scheduling differ by seconds).
MAX_CLOCK_SKEW = timedelta(minutes=5)
EMAIL_PATTERN = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


class InvalidInput(Exception):
    """The execution input or the requested users cannot be processed. Raised before anything changes."""


class InvalidConfiguration(Exception):
    """The stack's parameters contradict each other. Raised before anything changes."""


@dataclass(frozen=True)
class Policy:
    max_key_age: timedelta
    install_window: timedelta
    recovery_window: timedelta
    notice_window: timedelta = timedelta(0)  # owners hear of a rotation or deactivation this long before it
    # The previous key is deactivated only once IAM has reported no use of it for this long (UnusedHours).
    unused_period: timedelta = timedelta(hours=24)
    # A previous key still in use at max_key_age: kept Active (False, the run then fails so the alarm fires) or
    # deactivated for compliance (True) (KeyInUseAtMaxAge).
    deactivate_in_use_at_max_age: bool = False

    @classmethod
    def from_days(
        cls, max_key_age: int, install_window: int, recovery_window: int, notice: int = 0, unused_hours: int = 24,
        deactivate_in_use_at_max_age: bool = False,
    ) -> Policy:
        return cls(
            timedelta(days=max_key_age), timedelta(days=install_window), timedelta(days=recovery_window),
            timedelta(days=notice), timedelta(hours=unused_hours), deactivate_in_use_at_max_age,
        )

    @property
    def rotation_age(self) -> timedelta:
        """The age at which a key is rotated: its successor's install window then ends COMPLIANCE_MARGIN before
        the key reaches max_key_age, when it is deactivated (unless a consumer still uses it)."""
        return self.max_key_age - self.install_window - COMPLIANCE_MARGIN

    def check(self) -> None:
        """A key must outlive its predecessor's install and recovery windows, or every rotation would have to
        delete the previous key early to make room (or block the user for good)."""
        if self.rotation_age <= self.install_window + self.recovery_window:
            least = 2 * self.install_window.days + self.recovery_window.days + COMPLIANCE_MARGIN.days + 1
            raise InvalidConfiguration(
                f"MaxKeyAgeDays ({self.max_key_age.days}) must be at least {least} with InstallWindowDays "
                f"{self.install_window.days} and RecoveryWindowDays {self.recovery_window.days}: a key is rotated at "
                f"MaxKeyAgeDays - InstallWindowDays - {COMPLIANCE_MARGIN.days} days, so that the previous key is "
                "deactivated before it reaches MaxKeyAgeDays, and a key must outlive its predecessor's install and "
                "recovery windows. Change the stack's parameters."
            )
        if self.unused_period < IAM_LAST_USED_DELAY:
            raise InvalidConfiguration(
                f"UnusedHours ({self.unused_period / timedelta(hours=1):g}) must be at least "
                f"{IAM_LAST_USED_DELAY / timedelta(hours=1):g}: IAM reports a key's last use up to about four hours late, "
                "so a shorter period could deactivate a key a consumer used minutes ago. Change the stack's parameters."
            )


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


MISSING_SECRET = Secret()


@dataclass(frozen=True)
class RunRequest:
    time: datetime  # "now" for every age, to IAM's whole second
    users: tuple[str, ...] | None = None
    accounts: tuple[str, ...] | None = None  # an on-demand run's accounts (the hub's TargetAccounts narrowed)
    force: bool = False
    dry_run: bool = False
    scheduled: bool = True
    started: datetime | None = None  # when the execution really started

    @property
    def recorded_at(self) -> datetime:
        """The time to write on what this run records (inactive-since tags): when it really acts. A replay with a
        past "time" must not back-date a deactivation, or the next run would delete the key early."""
        return max(self.time, self.started or self.time)


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


def key_version_id(access_key_id: str) -> str:
    return SECRET_VERSION_PREFIX + access_key_id


def key_id_from_version_id(version_id: str) -> str | None:
    if version_id.startswith(SECRET_VERSION_PREFIX):
        return version_id[len(SECRET_VERSION_PREFIX) :]
    return None


def user_key(name: str) -> str:
    """A user's identity as IAM sees it: its name without regard to letter case."""
    return name.lower()


def secret_name_problem(name: str) -> str | None:
    """Why Secrets Manager would refuse ``name``, or None."""
    if SECRET_NAME_PATTERN.fullmatch(name):
        return None
    bad = sorted({c for c in name if not SECRET_NAME_PATTERN.fullmatch(c)}) or ["its length"]
    return (
        f"its secret would be named {name}, which Secrets Manager does not accept ({' '.join(map(repr, bad))}: a "
        "name takes letters, digits and /_+=.@- only), so no key is created for it: rename the user (aws iam "
        "update-user --new-user-name) or take it out of rotation"
    )


def inactive_since_tag(access_key_id: str) -> str:
    return INACTIVE_SINCE_TAG_PREFIX + access_key_id


def parse_inactive_since_tags(tags: dict[str, str]) -> dict[str, datetime]:
    """Key id -> deactivation time from a user's tags; a tag whose value is not a time is ignored."""
    found = {}
    for tag_key, value in tags.items():
        if tag_key.startswith(INACTIVE_SINCE_TAG_PREFIX):
            try:
                found[tag_key[len(INACTIVE_SINCE_TAG_PREFIX) :]] = parse_time(value)
            except ValueError:
                continue
    return found


def is_managed(path: str, tags: dict[str, str], user_path: str, tag_key: str, tag_value: str) -> bool:
    """A user is managed when it lies under ``user_path`` and, if ``tag_key`` is set, carries the tag."""
    if not path.startswith(user_path):
        return False
    return not tag_key or tags.get(tag_key) == tag_value


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


def decide(
    user: str,
    keys: list[Key],
    secret: Secret,
    now: datetime,
    policy: Policy,
    force: bool = False,
    obsolete_tags: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
    tag_count: int | None = None,
    recorded_at: datetime | None = None,
) -> Decision:
    """Decide one user's actions for a run at ``now``.

    The rules, in the order they are applied:
    - A secret name Secrets Manager would refuse blocks the user: no key is created that could not be stored.
    - A secret scheduled for deletion needs attention: its consumers are about to lose it.
    - The current key is the Active key the secret holds, else the newest Active key.
    - Rotation is due when forced (only a key created before ``now``, so the same forced input twice rotates
      once), or when the current key's age reaches ``policy.rotation_age``: early enough that no Active key
      reaches ``max_key_age``. It needs room
      (IAM allows two keys): an Inactive key is deleted to make room; two Active keys block the user.
    - A secret whose AWSCURRENT is not an Active key of the user (deleted or deactivated by hand, another user's),
      was written outside the workflow, or was deleted by hand after the workflow stored a key in it (the user's
      SECRET_TAG says so) needs attention until a rotation is due or forced: its consumers are locked out, and
      nothing is retired meanwhile.
    - Keys are retired only once the secret holds the current key (before the first rotation, consumers use
      keys the workflow never stored, so it retires nothing). Then, once the current key's age reaches the
      install window, other Active keys are deactivated, unless IAM reported a use of the key within
      ``unused_period`` (it is then held, or overdue past ``max_key_age``; its last use must have been read:
      ``read_last_use`` asks for it); an Inactive key is deleted once the current key's age
      reaches install + recovery window *and* the key has been Inactive for the recovery window, counted from
      its inactive-since tag (written on deactivation, or on first sight for keys deactivated by hand), so a
      key is never deleted in the run that deactivated it, and missed runs never shorten the window.
    - The tags the run writes must fit within IAM's 50 per user (``tag_count``: how many the user has; ``tags``:
      at least the workflow's own), or the user is blocked before anything changes.
    ``obsolete_tags`` names keys whose inactive-since tag no longer applies (the key was re-activated or is
    gone): the tag is removed, so a later deactivation by hand starts a fresh recovery window. Times written on
    tags are ``recorded_at`` (default ``now``): when the run really acts.
    """
    overrides = user_overrides(tags or {}, policy, now)
    if overrides.problems:
        return Decision(
            user, "blocked", "; ".join(overrides.problems) + ": nothing is changed until the tag is fixed or removed "
            "(aws iam tag-user / untag-user)",
        )
    if overrides.exempt_until is not None:
        return Decision(
            user, "exempt", f"exempt until {overrides.exempt_until.isoformat()} (tag {EXEMPT_UNTIL_TAG}): "
            f"{overrides.exempt_reason}; its keys are neither rotated nor retired until then",
        )
    policy = overrides.policy
    decision = _decide(user, keys, secret, now, policy, force, recorded_at or now)
    if overrides.expired and decision.outcome == "unchanged" and not decision.has_actions and not decision.read_last_use:
        return Decision(user, "attention", overrides.expired)
    if overrides.expired:
        decision.reason += f"; {overrides.expired}"
    if decision.outcome in UNCHANGED_OUTCOMES or decision.read_last_use:
        return decision  # left entirely unchanged, tags included (or to be decided again)
    decision.forget_inactive.extend(
        k for k in obsolete_tags if k not in decision.forget_inactive and k not in decision.record_inactive
    )
    return _within_tag_quota(_noting_records(decision), tag_count, frozenset(tags or ()))


def _decide(user, keys, secret, now, policy, force, recorded_at) -> Decision:
    if secret.name and (problem := secret_name_problem(secret.name)):
        return Decision(user, "blocked", problem)
    if secret.scheduled_for_deletion:
        return Decision(
            user,
            "attention",
            f"its secret {secret.name} is scheduled for deletion, so its consumers are about to lose their key, and "
            f"nothing is retired meanwhile: restore it (aws secretsmanager restore-secret --secret-id {secret.name}), "
            "or take the user out of rotation",
        )

    active = sorted((k for k in keys if k.active), key=lambda k: k.created)
    inactive = sorted((k for k in keys if not k.active), key=lambda k: k.created)
    secret_key = next((k for k in keys if k.id == secret.key_id), None) if secret.key_id else None
    current = secret_key if secret_key and secret_key.active else (active[-1] if active else None)
    secret_healthy = secret_key is not None and secret_key is current
    secret_stale = secret.key_id is not None and not secret_healthy

    # Inactive keys without a recorded time get one now: their recovery window starts today.
    record = {k.id: recorded_at for k in inactive if k.inactive_since is None}

    if force and (current is None or current.created < now):
        # Only keys older than the run's time: the same forced input twice rotates once.
        rotate_reason = "rotation forced on demand"
    elif current is not None and _reached(now - current.created, policy.rotation_age):
        rotate_reason = (
            f"key {current.id} is {_days(now - current.created)} old; keys are rotated at {_days(policy.rotation_age)}, "
            f"so that no Active key reaches {_days(policy.max_key_age)} (MaxKeyAgeDays)"
        )
    else:
        rotate_reason = None

    if rotate_reason:
        delete_id = None
        if len(keys) >= 2:
            spare = inactive  # never the current key, which is Active
            if not spare:
                return Decision(
                    user,
                    "blocked",
                    f"rotation is due ({rotate_reason}), but the user has two Active keys, "
                    f"{' and '.join(k.id for k in active)}: IAM allows two, and an Active key is never deleted. "
                    "Deactivate the one no consumer uses, and the next run rotates the user",
                )
            delete_id = spare[0].id
        decision = Decision(
            user,
            "rotate",
            rotate_reason,
            rotate=True,
            delete_key_id=delete_id,
            previous_key_id=current.id if current else None,
        )
        if delete_id:
            decision.reason += f"; Inactive key {delete_id} is deleted to make room"
            decision.forget_inactive.append(delete_id)
            record.pop(delete_id, None)
        decision.record_inactive = record
        return decision

    if lost := _secret_lost(user, secret, secret_stale, active):
        return Decision(user, "attention", lost)

    decision = Decision(user, "unchanged", "nothing is due", record_inactive=record)
    if not secret_healthy:
        decision.reason = (
            "no key is due; keys are retired only after the workflow has stored one in the secret"
            if current
            else "the user has no Active key"
        )
        if current:
            _add_notices(decision, current, active, now, policy, healthy=False)
        return decision

    newer = [k for k in active if k.created > current.created]
    if newer:
        return Decision(
            user,
            "blocked",
            f"key {newer[0].id} was created after the key its secret holds ({current.id}), outside this "
            "workflow, so a consumer may depend on it: delete it if it is unused, or remove the user from "
            "rotation while you sort it out",
        )

    if secret.name and secret.recorded != secret.name:  # stored by a version of the workflow before the tag
        decision.record_secret = secret.name
    current_age = now - current.created
    _add_notices(decision, current, active, now, policy, secret_healthy)
    notes = []
    if _reached(current_age, policy.install_window):
        others = [k for k in active if k is not current]
        if others:
            previous = others[0]
            if previous.last_use is None:  # never deactivate on a timer alone: read its last use, then decide
                decision.read_last_use = previous.id
                return decision
            if held := _still_in_use(user, previous, current, secret, now, policy):
                return held
            decision.deactivate_key_id = previous.id
            decision.verify_key_id = current.id
            record[previous.id] = recorded_at
            notes.append(
                f"key {previous.id} deactivated: the current key {current.id} is {_days(current_age)} old "
                f"(install window {_days(policy.install_window)}){_unused_since(previous, now, policy)}"
            )
    if _reached(current_age, policy.install_window + policy.recovery_window):
        for k in inactive:
            if k.inactive_since is not None and _reached(now - k.inactive_since, policy.recovery_window):
                decision.delete_key_id = k.id
                decision.forget_inactive.append(k.id)
                notes.append(f"Inactive key {k.id} deleted: inactive since {format_time(k.inactive_since)}")
                break
    if notes:
        decision.outcome = "retire"
        decision.reason = "; ".join(notes)
    return decision


# Outcomes that change nothing, tags included: a person must act, (held) a consumer must stop using a key, or
# (exempt) a person exempted the user for a while.
UNCHANGED_OUTCOMES = ("blocked", "attention", "held", "overdue", "exempt")

# Per-user overrides, by user tag, bounded by the stack's parameters.
MAX_AGE_TAG = "KeyRotationMaxAgeDays"  # may only shorten MaxKeyAgeDays
INSTALL_WINDOW_TAG = "KeyRotationInstallWindowDays"  # may only lengthen InstallWindowDays, within the maximum age
EXEMPT_UNTIL_TAG = "KeyRotationExemptUntil"  # YYYY-MM-DD: neither rotated nor retired until that day, inclusive
EXEMPT_REASON_TAG = "KeyRotationExemptReason"  # required with an exemption
OVERRIDE_TAGS = (MAX_AGE_TAG, INSTALL_WINDOW_TAG, EXEMPT_UNTIL_TAG, EXEMPT_REASON_TAG)


@dataclass(frozen=True)
class Overrides:
    policy: Policy  # the stack's, with the user's tags applied
    exempt_until: date | None = None  # an exemption in force
    exempt_reason: str = ""
    expired: str = ""  # an exemption past its date: ignored, and said
    problems: tuple[str, ...] = ()  # invalid tag values: the user is blocked, never guessed for


def user_overrides(tags: dict[str, str], policy: Policy, now: datetime) -> Overrides:
    """The user's own policy and exemption from its tags, within the stack's bounds; each invalid value named."""
    problems = []

    def days(tag: str) -> int | None:
        if tag not in tags:
            return None
        value = tags[tag].strip()
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            problems.append(f"tag {tag}={tags[tag]!r} is not a whole number of days")
            return None
        return int(value)

    max_age, install = days(MAX_AGE_TAG), days(INSTALL_WINDOW_TAG)
    if max_age is not None and max_age > policy.max_key_age.days:
        problems.append(
            f"tag {MAX_AGE_TAG}={max_age} would lengthen the stack's MaxKeyAgeDays ({policy.max_key_age.days}); "
            "it may only shorten it"
        )
    if install is not None and install < policy.install_window.days:
        problems.append(
            f"tag {INSTALL_WINDOW_TAG}={install} would shorten the stack's InstallWindowDays "
            f"({policy.install_window.days}); it may only lengthen it"
        )
    mine = Policy(
        timedelta(days=max_age) if max_age else policy.max_key_age,
        timedelta(days=install) if install else policy.install_window,
        policy.recovery_window, policy.notice_window, policy.unused_period, policy.deactivate_in_use_at_max_age,
    )
    if not problems and (max_age or install):
        try:
            mine.check()
        except InvalidConfiguration:
            least = 2 * mine.install_window.days + mine.recovery_window.days + COMPLIANCE_MARGIN.days + 1
            problems.append(
                f"tags {MAX_AGE_TAG}/{INSTALL_WINDOW_TAG} give a maximum age of {mine.max_key_age.days} days with an install "
                f"window of {mine.install_window.days}: the maximum age must be at least {least} days"
            )

    until = reason = None
    expired = ""
    if EXEMPT_UNTIL_TAG in tags or EXEMPT_REASON_TAG in tags:
        reason = tags.get(EXEMPT_REASON_TAG, "").strip()
        try:
            until = date.fromisoformat(tags.get(EXEMPT_UNTIL_TAG, "").strip())
        except ValueError:
            problems.append(
                f"tag {EXEMPT_UNTIL_TAG}={tags.get(EXEMPT_UNTIL_TAG, '')!r} is not a date (YYYY-MM-DD); an exemption needs one"
            )
        if not reason:
            problems.append(f"an exemption needs its reason in tag {EXEMPT_REASON_TAG}")
        today = now.astimezone(timezone.utc).date()
        if until and until > today + policy.max_key_age:
            problems.append(
                f"tag {EXEMPT_UNTIL_TAG}={until.isoformat()} lies more than MaxKeyAgeDays ({policy.max_key_age.days}) ahead; "
                "an exemption lasts at most one rotation cycle"
            )
        if until and until < today and not problems:
            expired = (
                f"its exemption ended on {until.isoformat()} (tag {EXEMPT_UNTIL_TAG}) and is ignored: remove the tags "
                f"{EXEMPT_UNTIL_TAG} and {EXEMPT_REASON_TAG}"
            )
            until = None
    if problems:
        return Overrides(policy, problems=tuple(problems))
    return Overrides(mine, until, reason or "", expired)


def _still_in_use(user: str, previous: Key, current: Key, secret: Secret, now: datetime, policy: Policy) -> Decision | None:
    """A held (or overdue) decision when IAM reported a use of ``previous`` within the unused period: a consumer
    still signs with it, and deactivating it now would lock that consumer out. None when it may be deactivated."""
    use = previous.last_use
    if use is None or use.when is None or now - use.when >= policy.unused_period:
        return None
    age = now - previous.created
    overdue = _reached(age, policy.max_key_age)
    if overdue and policy.deactivate_in_use_at_max_age:
        return None
    hours = f"{policy.unused_period / timedelta(hours=1):g} hours"
    reason = (
        f"previous key {previous.id} is still in use ({use.describe()}), though the secret {secret.name} has held "
        f"key {current.id} for {_days(now - current.created)}: it stays Active until IAM reports no use of it for "
        f"{hours}. Find the consumer that signs with it (aws cloudtrail lookup-events --lookup-attributes "
        f"AttributeKey=AccessKeyId,AttributeValue={previous.id}) and have it read the secret"
    )
    if overdue:
        reason += (
            f"; the key is {_days(age)} old, past MaxKeyAgeDays ({_days(policy.max_key_age)}): it is kept Active "
            "because KeyInUseAtMaxAge is Keep, and the run fails so the alarm fires (KeyInUseAtMaxAge=Deactivate "
            "deactivates such a key for compliance)"
        )
    return Decision(user, "overdue" if overdue else "held", reason)


def _unused_since(key: Key, now: datetime, policy: Policy) -> str:
    """How the deactivated key was used: nothing when never, else its last use (and, if that is recent, why)."""
    use = key.last_use
    if use is None or use.when is None:
        return ""
    if now - use.when < policy.unused_period:  # only past MaxKeyAgeDays with KeyInUseAtMaxAge=Deactivate
        return (
            f"; it is still in use ({use.describe()}) but {_days(now - key.created)} old: deactivated for compliance "
            "(KeyInUseAtMaxAge=Deactivate); re-activate it if a consumer is locked out"
        )
    return f"; {use.describe()}, {_hours_or_days(now - use.when)} ago"


def _hours_or_days(delta: timedelta) -> str:
    hours = delta / timedelta(hours=1)
    return f"{hours:.0f} hours" if hours < 48 else _days(delta)


def _fresh_key_advice(user: str, active: list[Key]) -> str:
    """How a person has the workflow store a fresh key for ``user``, from the keys it has now."""
    run = f'run on demand with {{"users": ["{user}"], "force": true}} to store a fresh key'
    if len(active) >= 2:
        return f"deactivate whichever of {' and '.join(k.id for k in active)} no consumer uses (IAM allows two keys), then {run}"
    return run


def _secret_lost(user: str, secret: Secret, stale: bool, active: list[Key]) -> str | None:
    """Why consumers reading the user's secret may be locked out by a change made by hand, and the fix; or None."""
    fix = _fresh_key_advice(user, active)
    its_secret = f"its secret {secret.name}" if secret.name else "its secret"
    if stale:
        return (
            f"{its_secret} holds key {secret.key_id}, which is not an Active key of the user, so consumers reading "
            f"the secret are locked out, and nothing is retired: re-activate that key (aws iam update-access-key "
            f"--user-name {user} --access-key-id {secret.key_id} --status Active), or {fix}"
        )
    if secret.foreign:
        return (
            f"{its_secret} was last written outside this workflow (its AWSCURRENT version is not "
            f"{SECRET_VERSION_PREFIX}<key id>), so which key its consumers get is unknown: if it is not a working key "
            f"of {user}, they are locked out. Nothing is retired until the workflow stores a key again: {fix}"
        )
    if not secret.exists and secret.recorded:
        moved = (
            f" The key is now kept in {secret.name} (the user was renamed, or SecretNamePrefix changed): point "
            f"consumers there, and delete {secret.recorded} if it still exists."
            if secret.name and secret.recorded != secret.name
            else ""
        )
        return (
            f"its secret {secret.recorded}, in which this workflow stored the user's key, no longer exists (deleted "
            f"without a recovery window), so its consumers are locked out, and nothing is retired: {fix}.{moved}"
        )
    return None


def _within_tag_quota(decision: Decision, tag_count: int | None, tag_keys: frozenset[str]) -> Decision:
    """Block a user whose tags this run would take past IAM's quota: better before anything changes than a
    TagUser that fails half-way."""
    if tag_count is None:
        return decision
    adding = {inactive_since_tag(k) for k in decision.record_inactive}
    adding |= {SECRET_TAG} if decision.rotate or decision.record_secret else set()
    adding -= tag_keys
    if tag_count + len(adding) <= MAX_TAGS_PER_USER:
        return decision
    excess = tag_count + len(adding) - MAX_TAGS_PER_USER
    return Decision(
        decision.user,
        "blocked",
        f"{decision.reason}; but the user has {tag_count} tags, IAM allows {MAX_TAGS_PER_USER}, and this run must "
        f"add {len(adding)} to keep its records ({', '.join(sorted(adding))}): remove {excess} tag(s) the user no "
        "longer needs (aws iam untag-user); nothing was changed, and the next run goes on",
    )


def left_rotation(user: str, keys: list[Key] | None, secret: Secret, why: str) -> Decision | None:
    """A secret the workflow wrote whose user is no longer managed (``why``: untagged, moved off UserPath,
    deleted when ``keys`` is None): what a person must finish, or None when nothing is left half done."""
    if secret.scheduled_for_deletion or secret.key_id is None:
        return None  # on its way out, or not the workflow's
    if keys is None:
        return Decision(
            user,
            "attention",
            f"{why}, but its secret {secret.name} still holds its key {secret.key_id}, which no longer works: delete "
            f"the secret once nothing reads it (aws secretsmanager delete-secret --secret-id {secret.name})",
        )
    held = next((k for k in keys if k.id == secret.key_id), None)
    others = [k for k in keys if k is not held]
    if held is not None and held.active and not others:
        return None  # steady: its one key is in the secret; it simply is not rotated any more
    states = ", ".join(
        f"{k.id} ({'Active' if k.active else 'Inactive'}{', in the secret' if k is held else ''})" for k in keys
    ) or "none"
    finish = (
        f"deactivate {' and '.join(k.id for k in others if k.active)} once no consumer uses it, then delete it"
        if any(k.active for k in others)
        else f"delete {' and '.join(k.id for k in others)} once you no longer need it as a fallback"
        if others
        else f"re-activate {secret.key_id} or store a working key in {secret.name}"
    )
    return Decision(
        user,
        "attention",
        f"{why}, with its rotation unfinished: keys {states}. Nothing is rotated or retired for it any more: bring "
        f"it back into scope and the next run finishes the work, or finish by hand: {finish}",
    )


def _add_notices(decision: Decision, current: Key, active: list[Key], now: datetime, policy: Policy, healthy: bool) -> None:
    """Owners hear in advance of a rotation, and of the deactivation of a key consumers may still use."""
    if not policy.notice_window:
        return
    rotation = current.created + policy.rotation_age - SCHEDULE_SLACK
    if now < rotation <= now + policy.notice_window:
        decision.notices.append(
            f"key {current.id} will be rotated on {format_time(rotation)[:10]} (in {_days(rotation - now)}): "
            "a new key will be stored in the secret, and this one stays Active for the install window"
        )
    deactivation = current.created + policy.install_window - SCHEDULE_SLACK
    others = [k for k in active if k is not current]
    if healthy and others and now < deactivation <= now + policy.notice_window:
        decision.notices.append(
            f"key {others[0].id} will be deactivated on {format_time(deactivation)[:10]} (in "
            f"{_days(deactivation - now)}): make sure every consumer reads key {current.id} from the secret"
        )


def _noting_records(decision: Decision) -> Decision:
    """An otherwise unchanged user whose inactive-since tags are written or removed now."""
    if decision.outcome == "unchanged" and decision.has_actions:
        decision.outcome = "record"
        noted = [f"Inactive key {k} noted: its recovery window starts now" for k in decision.record_inactive]
        noted += [f"obsolete tag for key {k} removed" for k in decision.forget_inactive]
        noted += [f"the user's tag {SECRET_TAG} now names {decision.record_secret}"] if decision.record_secret else []
        decision.reason = "; ".join(noted)
    return decision


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


_INPUT_FIELDS = {"time", "users", "accounts", "force", "dryRun"}


def parse_run_request(raw: object, start_time: str | None) -> RunRequest:
    """Validate the execution input. Every problem is named at once, with what to write instead."""
    if not isinstance(raw, dict):
        raise InvalidInput('the execution input must be a JSON object such as {"time": "2026-01-01T00:00:00Z"}')
    problems = []
    unknown = sorted(set(raw) - _INPUT_FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}: allowed are {', '.join(sorted(_INPUT_FIELDS))}")

    moment = None
    time_value = raw.get("time", start_time)
    started = iam_seconds(parse_time(start_time)) if start_time else None
    try:
        moment = iam_seconds(parse_time(time_value))  # IAM's dates are whole seconds: so are the run's ages
    except (ValueError, TypeError) as error:
        problems.append(
            f'"time" must be an ISO-8601 UTC time such as "2026-01-01T00:00:00Z", got {time_value!r}'
            + (" (out of range)" if "out of range" in str(error) else "")
        )
    else:
        if started and moment > started + MAX_CLOCK_SKEW:
            # A future "time" would age every key at once: rotations, and deactivations inside the install window.
            problems.append(
                f'"time" {time_value} is after the run started ({format_time(started)}): a run cannot act in the '
                "future; leave \"time\" out, or give the scheduled time"
            )

    users = raw.get("users")
    if "users" in raw:
        if not isinstance(users, list) or not users or not all(isinstance(u, str) for u in users):
            problems.append('"users" must be a non-empty list of IAM user names, such as ["alice"]')
            users = None
        else:
            bad = [u for u in users if not USER_NAME_PATTERN.fullmatch(u)]
            if bad:
                problems.append(f'"users" holds names that are not IAM user names: {", ".join(map(repr, bad))}')
            firsts: dict[str, str] = {}  # IAM names ignore letter case: "Alice" and "alice" are one user, acted on once
            for name in users:
                firsts.setdefault(user_key(name), name)
            users = tuple(firsts.values())

    accounts, account_problems = targets.parse_requested_accounts(raw.get("accounts"))
    problems += account_problems

    for flag in ("force", "dryRun"):
        if flag in raw and not isinstance(raw[flag], bool):
            problems.append(f'"{flag}" must be true or false, got {raw[flag]!r}')
    force = raw.get("force") is True
    if force and "users" not in raw:
        problems.append('"force" rotates named users only: add "users": ["name", ...]')

    if problems:
        raise InvalidInput("; ".join(problems))
    return RunRequest(
        time=moment,
        users=users,
        accounts=accounts,
        force=force,
        dry_run=raw.get("dryRun") is True,
        scheduled="users" not in raw,
        started=started,
    )


def keys_to_clean_up(
    known_ids: set[str], keys: list[Key], secret: Secret, since: datetime
) -> tuple[str | None, list[str]]:
    """After a failed create or store: (the new key the secret holds after all, the unstored keys to delete).

    A create or store can succeed at AWS yet report a failure (a lost response, a timeout), so the secret is
    asked rather than the error believed. Keys the plan did not know that were created since the run
    started were created by this run; all but the one the secret holds are deleted (nobody has them).
    ``since`` is a state's entered time, which has milliseconds, and IAM reports CreateDate to the whole
    second: a key created in the same second reads as older than ``since``, so they are compared in IAM's
    whole seconds.
    """
    since = iam_seconds(since)
    new = [k for k in keys if k.id not in known_ids and k.created >= since]
    stored = secret.key_id if any(k.id == secret.key_id for k in new) else None
    return stored, [k.id for k in new if k.id != stored]

