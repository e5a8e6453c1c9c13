"""The stack's rotation policy and each user's overrides of it: the windows (Policy), the margins the rules keep
(compliance, IAM's last-use delay, the schedule's slack), the parameters that contradict each other
(InvalidConfiguration), and the user tags that shorten the maximum age, lengthen the install window or exempt
a user for a while (user_overrides).

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers; callers use
``decisions.Policy`` and the like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

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


class InvalidConfiguration(Exception):
    """The stack's parameters contradict each other. Raised before anything changes."""

    # Callers know it as decisions.InvalidConfiguration (re-exported there), and so do tracebacks and
    # tests/test_template.py, which collects the functions' own errors by their module. Step Functions sees its
    # class name only.
    __module__ = "decisions"


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
