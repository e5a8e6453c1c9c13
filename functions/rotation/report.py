"""The plan items the state machine acts on, and the run's summary and email built from the results.

Pure functions. Nothing here receives secret material: results carry key ids and errors only.

Callers import this module only (``import report``, then ``report.X``). It holds the plan items (plan_item), the
report's content (build: each user's entry, the counts, the bounded summary) and the lifecycle events; the text
people read lives beside it in report_text.py (the run email's subject, topic subject and body, the owner emails,
the Fail state's cause and summary text, user_paragraph, cut, the size bounds MAX_CAUSE_CHARS, MAX_DETAILED_USERS,
MAX_DETAIL_CHARS, MAX_OWNER_EMAIL_CHARS and MAX_FAILURE_CAUSE_CHARS, and the outcomes counted and listed), and is
re-exported here. report_text imports no module of the rotation, so there is no cycle.
"""

from __future__ import annotations

import json

import decisions

# Re-exported: callers use them as report.X (tests, the emulator, docs' figures); build and lifecycle_events call
# the private ones.
from report_text import (
    _COUNTED,
    _LISTED,
    MAX_CAUSE_CHARS,
    MAX_DETAIL_CHARS,
    MAX_DETAILED_USERS,
    MAX_FAILURE_CAUSE_CHARS,
    MAX_OWNER_EMAIL_CHARS,
    _body,
    _failure_cause,
    _label,
    _labelled,
    _subject,
    _summary_text,
    _topic_subject,
    cut,
    owner_emails,
    user_paragraph,
)

# The summary (the execution's output) names at most this many users, problems first; the run bucket has them all.
MAX_SUMMARY_USERS = 200

_DONE = {"rotate": "rotated", "retire": "retired", "record": "noted", "grant": "granted"}
_PLANNED = {"rotate": "would-rotate", "retire": "would-retire", "record": "would-note", "grant": "would-grant"}
_NEWSWORTHY = {"rotated", "retired", "blocked", "attention", "held", "overdue", "exempt", "failed", "granted", "would-rotate",
               "would-retire", "would-grant"}
# What a person must act on, listed first wherever users are listed.
_PROBLEMS = ("failed", "overdue", "attention", "blocked", "held")


def plan_item(decision: decisions.Decision, secret_name: str, key_ids: list[str]) -> dict:
    """One user's actions as the state machine reads them: a field is present only when its step runs."""
    item = {"user": decision.user, "secretName": secret_name, "outcome": decision.outcome, "reason": decision.reason}
    if decision.rotate:
        item["rotate"] = True
        item["keyIds"] = key_ids  # the keys before the run: any other key found after a failure is this run's
        if decision.previous_key_id:
            item["previousKeyId"] = decision.previous_key_id
    if decision.deactivate_key_id:
        item["deactivateKeyId"] = decision.deactivate_key_id
        item["verifyKeyId"] = decision.verify_key_id
    if decision.delete_key_id:
        item["deleteKeyId"] = decision.delete_key_id
    if decision.record_inactive or decision.record_secret:
        item["recordTags"] = [
            {"Key": decisions.inactive_since_tag(key_id), "Value": decisions.format_time(since)}
            for key_id, since in decision.record_inactive.items()
        ] + ([{"Key": decisions.SECRET_TAG, "Value": decision.record_secret}] if decision.record_secret else [])
    if decision.forget_inactive:
        item["forgetTags"] = [decisions.inactive_since_tag(key_id) for key_id in decision.forget_inactive]
    if decision.grant_consumer:
        item["grantConsumer"] = True
    return item


def build(plan: dict, results: list[dict], run_error: dict | None, settings, where: str = "", start_time: str | None = None):
    """The run's report from its plan (what "Queue the actions" wrote: counts, the users acted on, the blocked,
    attention and unreadable users, notices) and the per-user results; ``settings`` is settings.Settings and
    ``where`` the whole report's place in the run bucket.

    Returns (the report the state machine carries, bounded whatever the account's size; every user's entry, for
    the run bucket; one email per owner, each bounded).
    """
    results_by_user = {_who(r): r for r in results}
    dry_run = plan.get("dryRun", False)

    users = []
    for item in plan.get("actions", []):
        result = results_by_user.get(_who(item))
        if dry_run:
            users.append(_entry(item, _PLANNED[item["outcome"]], item["reason"]))
        elif result is None or result.get("status") != "succeeded":
            users.append(_failure_entry(item, result))
        else:
            users.append(_success_entry(item, result, settings))
    users += [_entry(u, outcome, u["reason"]) for outcome in _LISTED for u in plan.get(outcome, [])]
    users += [_entry(u, "failed", u["reason"]) for u in plan.get("unreadable", [])]
    users = [_labelled(u, settings) for u in users]

    counts = {name: sum(u["outcome"] == name for u in users) for name in _COUNTED}
    newsworthy = _problems_first([u for u in users if u["outcome"] in _NEWSWORTHY])
    summary = {
        "time": plan.get("time") or _whole_seconds(start_time),
        "dryRun": dry_run,
        "managedUsers": plan.get("managedUsers", 0),
        "unchangedUsers": plan.get("unchangedUsers", 0),
        "deferredUsers": plan.get("deferredUsers", 0),
        **counts,
        "users": [_compact(u, detailed=n < MAX_DETAILED_USERS) for n, u in enumerate(newsworthy[:MAX_SUMMARY_USERS])],
    }
    if len(newsworthy) > MAX_SUMMARY_USERS:
        summary["moreUsers"] = len(newsworthy) - MAX_SUMMARY_USERS
    if where:
        summary["report"] = where
    if run_error:
        summary["error"] = f"{run_error.get('Error')}: {_cause(run_error)}"
    # A key in use past MaxKeyAgeDays (kept Active: KeyInUseAtMaxAge=Keep) fails the run, so the alarm fires.
    unreachable = plan.get("unreachableAccounts", [])
    if settings.many_accounts:
        summary["accounts"] = plan.get("accounts", 0)
        summary["unreachableAccounts"] = len(unreachable)
    failed = bool(counts["failed"] or counts["overdue"] or run_error or any(a["failsRun"] for a in unreachable))
    report = {
        "summary": summary,
        "failed": failed,
        "failureCause": _failure_cause(summary, newsworthy, unreachable) if failed else "",
        "recipients": list(settings.notification_emails),
        "subject": _subject(summary),
        "topicSubject": _topic_subject(_subject(summary)),
        "body": _body(summary, newsworthy, settings, unreachable),
        "summaryText": _summary_text(summary),
    }
    report["notify"] = bool(
        settings.sender_email
        and settings.notification_emails
        and (summary["users"] or run_error or unreachable or any(counts[k] for k in (*_LISTED, "failed")))
    )
    owners = owner_emails(plan, newsworthy, summary, settings) if settings.sender_email else []
    return report, newsworthy, owners


def _problems_first(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda u: u["outcome"] not in _PROBLEMS)


def _compact(entry: dict, detailed: bool) -> dict:
    """A user in the summary: the story (cut short) for the first users, problems first; the outcome and new key
    for the rest, so the summary stays small whatever the run's size."""
    if detailed:
        return {**entry, "detail": cut(entry["detail"])}
    return {k: v for k, v in entry.items() if k != "detail"}


def _entry(item: dict, outcome: str, detail: str) -> dict:
    entry = {"user": item["user"], "outcome": outcome, "detail": detail}
    if item.get("account"):
        entry["account"] = item["account"]
    return entry


def _who(item: dict) -> tuple[str, str]:
    """A user's identity across accounts: the same name may be a user of several."""
    return item.get("account", ""), item["user"]


def _success_entry(item: dict, result: dict, settings) -> dict:
    entry = _entry(item, _DONE[item["outcome"]], item["reason"])
    if result.get("newKeyId"):
        entry["newKeyId"] = result["newKeyId"]
        entry["detail"] += f"; new key {result['newKeyId']} stored in secret {item['secretName']}"
        if item.get("previousKeyId"):
            entry["detail"] += (
                f"; previous key {item['previousKeyId']} stays Active for "
                f"{settings.policy.install_window.days} days so every consumer can pick up the new secret"
            )
    return entry


def _failure_entry(item: dict, result: dict | None) -> dict:
    if result is None:
        detail = "no result: the user's steps did not run to the end"
        if item.get("rotate"):
            detail += (
                f". A new key may have been created and not stored: if the user has a key other than "
                f"{', '.join(item['keyIds']) or 'none'} that secret {item['secretName']} does not hold, delete it "
                f"(aws iam list-access-keys --user-name {item['user']})"
            )
    else:
        detail = f"{result.get('error')}: {_cause(result)}"
        cleanup = result.get("cleanup") or []
        deleted = [c["deletedKeyId"] for c in cleanup if "deletedKeyId" in c]
        left = [c["undeletedKeyId"] for c in cleanup if "undeletedKeyId" in c]
        if deleted:
            detail += f". The new key {', '.join(deleted)} was not stored, so it was deleted again"
        for key_id in left:
            detail += (
                f". The new key {key_id} was created but neither stored nor deleted, and no one has its secret: "
                f"delete it (aws iam delete-access-key --user-name {item['user']} --access-key-id {key_id})"
            )
        if result.get("storedKeyId"):
            detail += f". The new key {result['storedKeyId']} was stored in secret {item['secretName']} and is in use"
        if result.get("unchecked") and result.get("newKeyId"):
            key_id = result["newKeyId"]
            detail += (
                f". The cleanup could not check whether the secret holds the new key {key_id} "
                f"({result.get('checkError')}): if secret {item['secretName']} does not hold it, no one has its "
                f"secret: delete it (aws iam delete-access-key --user-name {item['user']} --access-key-id {key_id})"
            )
        elif result.get("unchecked"):
            detail += (
                f". The cleanup could not check for a key created but not stored ({result.get('checkError')}): "
                "compare the user's keys with its secret and delete any key the secret does not hold and no "
                "consumer has"
            )
    return _entry(item, "failed", f"planned: {item['reason']}; failed: {detail}")


def _whole_seconds(iso_time: str | None) -> str | None:
    return decisions.format_time(decisions.parse_time(iso_time)) if iso_time else None


def _cause(error: dict) -> str:
    """An error's cause, unwrapped from the JSON that Lambda errors arrive in."""
    cause = error.get("cause") or error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    return parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause


# Lifecycle events (EventBridge): source, schema version and one detail-type per change. docs/events.md documents
# them; a consumer rule matches on source and detail-type. Never secret material: key ids, names, ARNs, reasons.
EVENT_SOURCE = "iam-key-rotation"
EVENT_SCHEMA_VERSION = "1"
DETAIL_TYPES = {
    "rotated": "IAM Access Key Rotated",
    "proven": "IAM Access Key Stored Key Proven",
    "deactivated": "IAM Access Key Deactivated",
    "deleted": "IAM Access Key Deleted",
    "held": "IAM Access Key Held In Use",
    "overdue": "IAM Access Key Overdue",
    "blocked": "IAM Access Key Rotation Blocked",
    "attention": "IAM Access Key Rotation Needs Attention",
    "failed": "IAM Access Key Rotation Failed",
    "exempt": "IAM Access Key Rotation Exempted",
}


def lifecycle_events(plan: dict, results: list[dict], run_name: str, account: str) -> list[tuple[str, dict]]:
    """(detail-type, detail) for every change the run made or saw, user by user; none for a dry run."""
    if plan.get("dryRun"):
        return []
    results_by_user = {_who(r): r for r in results}
    events = []

    def event(kind: str, item: dict, **fields):
        detail = {"schemaVersion": EVENT_SCHEMA_VERSION, "account": item.get("account") or account, "run": run_name, "time": plan.get("time"),
                  "user": item["user"], "secretName": item.get("secretName"), "reason": item.get("reason", "")}
        events.append((DETAIL_TYPES[kind], {**detail, **{k: v for k, v in fields.items() if v is not None}}))

    for item in plan.get("actions", []):
        result = results_by_user.get(_who(item)) or {}
        if result.get("status") != "succeeded":
            event("failed", item, error=result.get("error"))
            continue
        if item.get("deleteKeyId"):
            event("deleted", item, keyId=item["deleteKeyId"])
        if item.get("deactivateKeyId"):
            event("proven", item, keyId=item["verifyKeyId"])
            event("deactivated", item, keyId=item["deactivateKeyId"])
        if result.get("newKeyId"):
            stored = result.get("stored") or {}
            # aws-sdk Tasks rename some members (ARN may reach the state as Arn): take either.
            event("rotated", item, newKeyId=result["newKeyId"], previousKeyId=item.get("previousKeyId"),
                  secretArn=stored.get("ARN") or stored.get("Arn"), secretVersionId=stored.get("VersionId"))
    for kind in _LISTED:
        for listed in plan.get(kind, []):
            event(kind, listed)
    for listed in plan.get("unreadable", []):
        event("failed", listed)
    return events
