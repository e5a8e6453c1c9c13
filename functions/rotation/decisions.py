"""What the workflow must do for one user, decided from the user's keys, the secret and the run's time.

Pure functions: no boto3, no clock, no environment. The handler reads AWS and calls these; the tests
call them with tables of cases. Nothing here ever sees secret material: keys are known by id, status and
dates, and the secret by its metadata (which key its AWSCURRENT version holds is encoded in the version id
that the state machine writes, see ``SECRET_VERSION_PREFIX``).

Callers import this module only (``import decisions``, then ``decisions.X``). It holds the decisions the
handlers ask for and re-exports the rest, which lives, split by responsibility, in modules beside it (all
equally pure):

- decisions.py (here): the run's request (RunRequest, parse_run_request, InvalidInput, MAX_CLOCK_SKEW), each
  user's decision (decide, and its core rules, _decide), whether the credential report alone shows a user needs
  nothing (untouched_by_report, STORE_WINDOW, FULL_READ_DAYS), and the keys to clean up after a failed
  create or store (keys_to_clean_up);
- facts.py: what a decision is made from and what it says: Key, LastUse, Secret, MISSING_SECRET, Decision,
  UNCHANGED_OUTCOMES;
- policy.py: the stack's Policy, its margins (COMPLIANCE_MARGIN, IAM_LAST_USED_DELAY, SCHEDULE_SLACK and
  _reached), InvalidConfiguration (which names itself decisions.InvalidConfiguration), and each user's
  overrides by tag (user_overrides, Overrides, OVERRIDE_TAGS);
- naming.py: the secret version id (SECRET_VERSION_PREFIX, key_version_id, key_id_from_version_id), the
  workflow's user tags (WORKFLOW_TAG_PREFIX, SECRET_TAG, inactive_since_tag, parse_inactive_since_tags,
  MAX_TAGS_PER_USER), the name patterns, user_key, secret_name_problem and is_managed;
- reported.py: what IAM's credential report says of each user's keys (parse_credential_report, ReportedUser,
  ReportedKey);
- times.py: parse_time, iam_seconds, format_time, and durations in words (_days, _hours_or_days);
- retiring.py: a previous key still in use (held or overdue), the owners' notices, the records an otherwise
  unchanged decision notes, and IAM's tag quota those records must fit;
- attention.py: what a person must do after a change by hand (_secret_lost) or for a user that left rotation
  unfinished (left_rotation);
- targets.py (its own subject, used by parse_run_request): which accounts a hub manages.

Each imports only modules before it in the order times, naming, reported, policy, facts, attention, retiring; none
imports this one or targets, so there is no cycle. decide, parse_run_request and keys_to_clean_up stay here and
call _secret_lost and iam_seconds through this module's names, as before the split: a test that patches
``decisions._secret_lost`` or ``decisions.iam_seconds`` still reaches them (tests/test_model.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import targets

# Re-exported: callers use them as decisions.X. The private names are the ones the rules below call (a test may
# patch them here) or that code elsewhere reaches for.
from attention import _fresh_key_advice, _secret_lost, left_rotation
from facts import MISSING_SECRET, UNCHANGED_OUTCOMES, Decision, Key, LastUse, Secret
from naming import (
    EMAIL_PATTERN,
    INACTIVE_SINCE_TAG_PREFIX,
    MAX_TAGS_PER_USER,
    SECRET_NAME_PATTERN,
    SECRET_TAG,
    SECRET_VERSION_PREFIX,
    USER_NAME_PATTERN,
    WORKFLOW_TAG_PREFIX,
    inactive_since_tag,
    is_managed,
    key_id_from_version_id,
    key_version_id,
    parse_inactive_since_tags,
    secret_name_problem,
    user_key,
)
from policy import (
    COMPLIANCE_MARGIN,
    EXEMPT_REASON_TAG,
    EXEMPT_UNTIL_TAG,
    IAM_LAST_USED_DELAY,
    INSTALL_WINDOW_TAG,
    MAX_AGE_TAG,
    OVERRIDE_TAGS,
    SCHEDULE_SLACK,
    InvalidConfiguration,
    Overrides,
    Policy,
    _reached,
    user_overrides,
)
from reported import ReportedKey, ReportedUser, parse_credential_report
from retiring import _add_notices, _noting_records, _still_in_use, _unused_since, _within_tag_quota
from times import _days, _hours_or_days, format_time, iam_seconds, parse_time

# How far a given "time" may lie after the execution's start (clocks and scheduling differ by seconds).
MAX_CLOCK_SKEW = timedelta(minutes=5)
# The workflow stores a key right after creating it: "Store new key in secret" (or "Create secret with new key")
# retries for about two minutes, and "Grant the consumer read access" follows. The secret last changes within this
# long of the key's creation.
STORE_WINDOW = timedelta(minutes=15)
# A user's keys are read on every day of its key's age that is a multiple of this, whatever the report says: what
# the report cannot show (an Inactive key, see reported.py) is seen within that many days on a daily schedule, and
# within that many runs on a weekly one (5 and 7 have no common divisor).
FULL_READ_DAYS = 5


class InvalidInput(Exception):
    """The execution input or the requested users cannot be processed. Raised before anything changes."""


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


def untouched_by_report(
    user: str,
    reported: ReportedUser | None,
    secret: Secret,
    tags: dict[str, str],
    tag_count: int,
    now: datetime,
    policy: Policy,
) -> bool:
    """Whether IAM's credential report alone shows that a scheduled run has nothing to do for a managed user, so
    that its keys need not be read (ListAccessKeys).

    It is only ever a reason to leave a user alone: every action is decided from the user's keys themselves. True
    only when all of these hold (otherwise the keys are read, as for any user):
    - the report lists the user with one key only, Active, with its creation time;
    - the secret exists, is not scheduled for deletion, and its AWSCURRENT is a key the workflow stored (its
      version id names the key);
    - the secret last changed at or after that key's creation and within STORE_WINDOW of it, as when the workflow
      created and stored it: a key made by hand after the store is newer than the secret's last change, and a
      secret changed since (a forced run, a person) no longer matches the key the report shows. The report has no
      key ids, so this matches by time: two keys the workflow created within STORE_WINDOW of each other (a forced
      rotation minutes after another), the newer then deleted by hand, would match the older; the full reads
      below bound that to FULL_READ_DAYS;
    - the user carries no inactive-since tag: the report may not show an Inactive key at all;
    - the key's age in whole days is not a multiple of FULL_READ_DAYS: on those days the keys are read anyway, so a
      key the report cannot show (one deactivated by hand) is seen within FULL_READ_DAYS days, and a key created
      today (age 0) is always read;
    - deciding with that one key as the secret's (decide) changes nothing, tags included, and sends no notice.
    What the report cannot show of the last hours (a key made, deactivated or deleted by hand after it was
    generated, at most four hours before the run), the next run whose report is newer than the change sees.
    """
    if reported is None or len(reported.keys) != 1 or not reported.keys[0].active or reported.keys[0].created is None:
        return False
    created = reported.keys[0].created
    if not secret.exists or secret.scheduled_for_deletion or secret.key_id is None or secret.changed is None:
        return False
    if not created <= secret.changed <= created + STORE_WINDOW:
        return False
    if any(tag.startswith(INACTIVE_SINCE_TAG_PREFIX) for tag in tags) or (now - created).days % FULL_READ_DAYS == 0:
        return False
    decision = decide(
        user, [Key(secret.key_id, True, created)], secret, now, policy, tags=tags, tag_count=tag_count, recorded_at=now
    )
    return decision.outcome == "unchanged" and not (decision.has_actions or decision.notices or decision.read_last_use)


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
