"""The plan items the state machine acts on, and the run's summary and email built from the results.

Pure functions. Nothing here receives secret material: results carry key ids and errors only.
"""

from __future__ import annotations

import json
import textwrap

import decisions

# Step Functions caps a Fail state's cause at 32,768 characters: a failure's cause is at most 8,000 characters of
# failed users and a summary of at most 8,000.
MAX_CAUSE_CHARS = 32_000
# Everything the report returns travels in the execution's state (256 KiB with the rest): the email tells at
# most this many users' stories in full, the summary keeps details for the users a person must look at.
MAX_DETAILED_USERS = 50
MAX_DETAIL_CHARS = 600
# The summary (the execution's output) names at most this many users, problems first; the run bucket has them all.
MAX_SUMMARY_USERS = 200
MAX_OWNER_EMAIL_CHARS = 3_000
MAX_FAILURE_CAUSE_CHARS = 8_000

_DONE = {"rotate": "rotated", "retire": "retired", "record": "noted", "grant": "granted"}
_PLANNED = {"rotate": "would-rotate", "retire": "would-retire", "record": "would-note", "grant": "would-grant"}
_NEWSWORTHY = {"rotated", "retired", "blocked", "attention", "held", "overdue", "exempt", "failed", "granted", "would-rotate",
               "would-retire", "would-grant"}
# What a person must act on, listed first wherever users are listed.
_PROBLEMS = ("failed", "overdue", "attention", "blocked", "held")
# How the subject line counts each outcome.
_COUNTED = {"rotated": "rotated", "retired": "retired", "granted": "granted", "blocked": "blocked",
            "attention": "need attention", "held": "previous key still in use", "overdue": "in use past the maximum age",
            "exempt": "exempt", "failed": "failed"}
# Users for whom nothing was done, as the plan lists them (with why).
_LISTED = ("blocked", "attention", "held", "overdue", "exempt")


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
    return report, [{k: v for k, v in u.items() if k != "label"} for u in newsworthy], owners


def _summary_text(summary: dict) -> str:
    """The summary as JSON for a Fail state's cause: whole when it fits, else the counts alone."""
    text = json.dumps(summary)
    if len(text) <= MAX_FAILURE_CAUSE_CHARS:
        return text
    return json.dumps({k: v for k, v in summary.items() if k != "users"} | {"users": "see the execution history"})


def _problems_first(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda u: u["outcome"] not in _PROBLEMS)


def _compact(entry: dict, detailed: bool) -> dict:
    """A user in the summary: the story (cut short) for the first users, problems first; the outcome and new key
    for the rest, so the summary stays small whatever the run's size."""
    if detailed:
        return {**{k: v for k, v in entry.items() if k != "label"}, "detail": cut(entry["detail"])}
    return {k: v for k, v in entry.items() if k not in ("detail", "label")}


def cut(detail: str) -> str:
    """At most MAX_DETAIL_CHARS, ending in "..." when cut, so that no one reads a cut sentence as a whole one."""
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[: MAX_DETAIL_CHARS - 3].rstrip() + "..."


def owner_emails(plan: dict, newsworthy: list[dict], summary: dict, settings) -> list[dict]:
    """One email per key owner (the user's owner tag) with their users' news and advance notices only."""
    def who(entry: dict) -> tuple[str, str]:  # entries of a one-account report carry no account
        return entry.get("account", "") if settings.many_accounts else "", entry["user"]

    owners = {}
    for entry in [e for listed in ("actions", *_LISTED, "notices") for e in plan.get(listed, [])]:
        if entry.get("owner"):
            owners[who(entry)] = entry["owner"]
    by_owner: dict[str, list[str]] = {}
    length: dict[str, int] = {}  # of each owner's text so far: once past the maximum, the rest would be cut

    def add(owner: str, paragraph) -> None:
        if length.get(owner, 0) <= MAX_OWNER_EMAIL_CHARS:  # else skip the wrapping (seconds at 40,000 users)
            lines = paragraph() + [""]
            by_owner.setdefault(owner, []).extend(lines)
            length[owner] = length.get(owner, -1) + sum(len(line) + 1 for line in lines)  # "\n".join's length

    for u in newsworthy:
        if who(u) in owners:
            add(owners[who(u)], lambda: user_paragraph(u))
    for n in plan.get("notices", []):
        if n.get("owner"):
            add(n["owner"], lambda: [f"{_label(_labelled(n, settings))}: NOTICE"] + [
                line for notice in n["notices"] for line in textwrap.wrap(notice, 76, initial_indent="    ", subsequent_indent="    ")
            ])
    prefix = "[dry run] " if summary["dryRun"] else ""
    emails = []
    for owner, lines in sorted(by_owner.items()):
        text = "\n".join(lines)
        if len(text) > MAX_OWNER_EMAIL_CHARS:
            text = text[:MAX_OWNER_EMAIL_CHARS].rsplit("\n", 1)[0] + "\n(more: ask the team that runs the rotation)\n"
        emails.append(
            {
                "to": [owner],
                "subject": f"{prefix}IAM access keys you own: news from the rotation of {summary['time']}",
                "body": f"You are the owner (tag {settings.owner_tag_key}) of these IAM users' access keys.\n\n"
                + text
                + "\nKeys are stored in Secrets Manager; this message never contains a secret.",
            }
        )
    return emails


def _entry(item: dict, outcome: str, detail: str) -> dict:
    entry = {"user": item["user"], "outcome": outcome, "detail": detail}
    if item.get("account"):
        entry["account"] = item["account"]
    return entry


def _who(item: dict) -> tuple[str, str]:
    """A user's identity across accounts: the same name may be a user of several."""
    return item.get("account", ""), item["user"]


def _label(item: dict) -> str:
    """A user as reports name it: with its account when the hub manages several (build() labels the entries)."""
    return item.get("label") or item["user"]


def _labelled(entry: dict, settings) -> dict:
    if settings.many_accounts and entry.get("account"):
        return {**entry, "label": f"{entry['account']}/{entry['user']}"}
    return {k: v for k, v in entry.items() if k != "account"}  # one account: reports read as they always did


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


def _subject(summary: dict) -> str:
    parts = [f"{summary[k]} {label}" for k, label in _COUNTED.items() if summary[k]]
    if summary.get("unreachableAccounts"):
        parts.append(f"{summary['unreachableAccounts']} account(s) not reached")
    if summary.get("error"):
        parts.append("run failed")
    prefix = "[dry run] " if summary["dryRun"] else ""
    return f"{prefix}IAM access key rotation {summary['time']}: {', '.join(parts) or 'nothing to do'}"


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


def _topic_subject(subject: str) -> str:
    """SNS takes a subject of at most 100 printable ASCII characters on one line."""
    text = "".join(c if " " <= c <= "~" else "?" for c in subject)
    return text if len(text) <= 100 else text[:97] + "..."


def _body(summary: dict, newsworthy: list[dict], settings, unreachable: list[dict]) -> str:
    lines = [
        f"IAM access key rotation run at {summary['time']}" + (" (dry run: nothing was changed)" if summary["dryRun"] else ""),
        f"Managed users: {summary['managedUsers']} ({settings.scope()}); unchanged: {summary['unchangedUsers']}.",
        "",
    ]
    if summary["deferredUsers"]:
        lines += [
            f"{summary['deferredUsers']} more user(s) need action and wait for the next runs: a run acts on at "
            f"most {settings.max_users_per_run} users (MaxUsersPerRun), the oldest keys first.",
            "",
        ]
    if settings.many_accounts:
        lines += [f"Accounts: {summary['accounts']}" + (f"; {len(unreachable)} not reached:" if unreachable else "."), ""]
        for problem in unreachable[:MAX_DETAILED_USERS]:
            lines += user_paragraph({"user": f"account {problem['account']}", "outcome": "failed" if problem["failsRun"] else "skipped", "detail": cut(problem["reason"])}) + [""]
        if len(unreachable) > MAX_DETAILED_USERS:
            lines += [f"... and {len(unreachable) - MAX_DETAILED_USERS} more accounts: see {summary.get('report', 'the run bucket')}.", ""]
    if summary.get("error") and summary["managedUsers"]:
        lines += [f"The run failed: {summary['error']}. Users without a result are listed as failed.", ""]
    elif summary.get("error"):
        lines += [f"The run failed before any user was processed: {summary['error']}", ""]
    shown = newsworthy[:MAX_DETAILED_USERS]  # problems first; across accounts, grouped by account
    # the account of the first problem first (entries come problems first), then the others as they come
    for account in dict.fromkeys(u.get("account", "") for u in shown) if settings.many_accounts else [""]:
        if settings.many_accounts:
            lines += [f"Account {account}:", ""]
        for u in shown:
            if not settings.many_accounts or u.get("account", "") == account:
                lines += user_paragraph({**u, "detail": cut(u["detail"])}) + [""]
    if len(newsworthy) > MAX_DETAILED_USERS:
        place = f"the full report, every user, is {summary['report']}" if summary.get("report") else "the execution's output lists them"
        lines += [f"... and {len(newsworthy) - MAX_DETAILED_USERS} more users: {place}.", ""]
    lines += [
        "Keys are stored in Secrets Manager; this message never contains a secret.",
        "A key deactivated by mistake can be re-activated until it is deleted:",
        "aws iam update-access-key --user-name USER --access-key-id KEY --status Active",
    ]
    return "\n".join(lines)


def user_paragraph(entry: dict, indent: str = "    ") -> list[str]:
    """One user's line in a report: the name and outcome, then what happened, wrapped for a mail reader."""
    detail = textwrap.wrap(
        entry.get("detail") or (f"new key {entry['newKeyId']}" if entry.get("newKeyId") else ""), width=76, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )
    return [f"{_label(entry)}: {entry['outcome'].upper()}", *detail]


def _failure_cause(summary: dict, newsworthy: list[dict], unreachable: list[dict] = ()) -> str:
    """Each unreachable account and failed user and why (as many as fit), then the summary as JSON (whole, or its
    counts)."""
    failed = [f"{_label(u)} ({u['detail']})" for u in newsworthy if u["outcome"] == "failed"]
    overdue = [f"{_label(u)} ({u['detail']})" for u in newsworthy if u["outcome"] == "overdue"]
    accounts = [f"{a['account']} ({a['reason']})" for a in unreachable if a["failsRun"]]
    parts = ([f"{len(accounts)} account(s) not reached: " + "; ".join(accounts)] if accounts else []) + ([f"{summary['failed']} user(s) failed: " + "; ".join(failed)] if failed else []) + (
        [f"{summary['overdue']} user(s) keep a key in use past MaxKeyAgeDays: " + "; ".join(overdue)] if overdue else []
    )
    head = summary.get("error") or ". ".join(parts)
    return head[:MAX_FAILURE_CAUSE_CHARS] + " Summary: " + _summary_text(summary)
