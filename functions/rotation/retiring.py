"""The parts of a user's decision around retiring keys and keeping records: a previous key still in use is held
(or overdue) rather than deactivated (_still_in_use), how a deactivated key was used (_unused_since), the
owners' notices ahead of a rotation or a deactivation (_add_notices), the tags an otherwise unchanged decision
notes (_noting_records), and IAM's tag quota those records must fit (_within_tag_quota).

Pure: no boto3, no clock, no environment. decide() in ``decisions`` applies these.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from facts import Decision, Key, Secret
from naming import MAX_TAGS_PER_USER, SECRET_TAG, inactive_since_tag
from policy import SCHEDULE_SLACK, Policy, _reached
from times import _days, _hours_or_days, format_time


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
