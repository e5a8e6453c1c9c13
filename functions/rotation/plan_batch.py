"""Plan a batch of users: the one Task of each child execution of "Plan each batch of users". Read-only.

Event: a contract.BatchToPlan (up to a hundred users, with their tags and secret metadata from "Plan the run").
Result: a contract.BatchPlan. For each user it reads the keys (ListAccessKeys; a user the credential report showed
needs nothing never comes here: plan_run), the last use of a key due for deactivation (GetAccessKeyLastUsed), and
the secret's resource policy where ConsumerPrincipalArn is set, then decides (decisions.py). A user whose keys
cannot be read is listed as unreadable; the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

import decisions
import reading
import report
from contract import BatchPlan, BatchToPlan, Listed, Notice, UserToPlan
from settings import Settings

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    return plan_batch(event, Settings.from_env(), reading.in_account)


def plan_batch(batch: BatchToPlan, settings: Settings, in_account) -> BatchPlan:
    """``in_account(role_arn, service, session_name)``: a client acting in a user's account as its member role."""
    now, recorded_at = decisions.parse_time(batch["time"]), decisions.parse_time(batch["recordedAt"])
    plan = BatchPlan(
        batch=batch["batch"], managed=0, unchanged=0, actions=[], blocked=[], attention=[], held=[], overdue=[],
        exempt=[], unreadable=[], notices=[],
    )

    def decide(user: UserToPlan):
        try:
            reader = settings.reader_role(user["account"])
            iam, secretsmanager = (in_account(reader, service, reading.session_name()) for service in ("iam", "secretsmanager"))
            return user, _decide(user, settings, iam, secretsmanager, now, recorded_at, batch["force"])
        except (reading.AccountUnreachable, *reading.READ_ERRORS) as error:  # after boto3's retries: this user waits
            return user, error

    # ParallelUsers calls to IAM at once per batch; ParallelBatches batches at once: the run's bound.
    with ThreadPoolExecutor(max(1, settings.parallel_users)) as pool:
        for user, decided in pool.map(decide, batch["users"]):
            plan["managed"] += user["managed"]
            where = {"account": user["account"]}
            if isinstance(decided, Exception):  # its account, or its keys, could not be read
                reason = decided.reason(settings) if isinstance(decided, reading.AccountUnreachable) else reading.unreadable_reason(decided)
                plan["unreadable"].append(Listed(user=user["user"], reason=reason, **where))
                continue
            if decided is None:
                plan["unchanged"] += user["managed"]
                continue
            decision, keys, secret_name = decided
            owner = reading.owner_of(user["tags"], settings.owner_tag_key, settings.owner_email_domains)
            owned = {"owner": owner, **where} if owner else where
            if decision.notices and owner:  # notices are for owners only
                plan["notices"].append(Notice(user=decision.user, notices=decision.notices, **owned))
            if decision.outcome in decisions.UNCHANGED_OUTCOMES:  # nothing changes: a person must act
                plan[decision.outcome].append(Listed(user=decision.user, reason=decision.reason, **owned))
            elif decision.has_actions:
                item = {"account": user["account"], "role": user["role"], **report.plan_item(decision, secret_name, [k.id for k in keys])}
                item["oldest"] = decisions.format_time(min((k.created for k in keys), default=now))
                plan["actions"].append({**item, **owned})
            else:
                plan["unchanged"] += 1
    return plan


def _decide(user: UserToPlan, settings: Settings, iam, secretsmanager, now, recorded_at, force: bool):
    """(decision, keys, secret name) for a user; None for a user that left rotation with nothing left to finish."""
    view = user["secret"]
    secret = decisions.Secret(
        exists=view["exists"], key_id=view["keyId"], foreign=view["foreign"], scheduled_for_deletion=view["deleted"],
        name=view["name"], recorded=user["tags"].get(decisions.SECRET_TAG),
    )
    gone = user.get("exists") is False
    keys, obsolete_tags = ([], ()) if gone else reading.keys_of(iam, user["user"], user["tags"])
    if not user["managed"]:
        decision = decisions.left_rotation(user["user"], None if gone else keys, secret, user["why"])
        if decision is not None:
            logger.info("user %s: %s (%s)", decision.user, decision.outcome, decision.reason)
        return (decision, keys, secret.name) if decision else None

    def decide(keys):
        return decisions.decide(
            user["user"],
            keys,
            secret,
            now,
            settings.policy,
            force=force,
            obsolete_tags=obsolete_tags,
            tags=user["tags"],
            tag_count=user["tagCount"],
            recorded_at=recorded_at,
        )

    decision = decide(keys)
    if decision.read_last_use:  # a key due for deactivation: was it used since the new key was stored?
        used = reading.last_use(iam, decision.read_last_use)
        keys = [dataclasses.replace(k, last_use=used) if k.id == decision.read_last_use else k for k in keys]
        decision = decide(keys)
    if settings.consumer_principal_arn and decision.outcome not in decisions.UNCHANGED_OUTCOMES and (
        (decision.rotate or secret.exists) and reading.needs_grant(secretsmanager, secret.name, settings.consumer_principal_arn)
    ):
        decision.grant_consumer = True
        if decision.outcome == "unchanged":
            decision.outcome = "grant"
            decision.reason = f"{settings.consumer_principal_arn} gets read access to the secret (ConsumerPrincipalArn)"
    logger.info("user %s: %s (%s)", user["user"], decision.outcome, decision.reason)
    return decision, keys, secret.name
