"""The report as people read it: the run email's subject (and the SNS topic's) and body, one email per key owner,
and the Fail state's cause; each user as a paragraph (user_paragraph), named as reports name it (_label), its story
cut to a bound (cut).

Pure functions, and like report.py never any secret material: the text carries key ids, names and reasons only.
Part of the report that ``report`` builds; callers use ``report.user_paragraph``, ``report.cut`` and the like.
Imports no module of the rotation, so ``report`` imports it without a cycle.
"""

from __future__ import annotations

import json
import textwrap

# Step Functions caps a Fail state's cause at 32,768 characters: a failure's cause is at most 8,000 characters of
# failed users and a summary of at most 8,000.
MAX_CAUSE_CHARS = 32_000
# Everything the report returns travels in the execution's state (256 KiB with the rest): the email tells at
# most this many users' stories in full, the summary keeps details for the users a person must look at.
MAX_DETAILED_USERS = 50
MAX_DETAIL_CHARS = 600
MAX_OWNER_EMAIL_CHARS = 3_000
MAX_FAILURE_CAUSE_CHARS = 8_000

# How the subject line counts each outcome (report.build counts these outcomes).
_COUNTED = {"rotated": "rotated", "retired": "retired", "granted": "granted", "blocked": "blocked",
            "attention": "need attention", "held": "previous key still in use", "overdue": "in use past the maximum age",
            "exempt": "exempt", "failed": "failed"}
# Users for whom nothing was done, as the plan lists them (with why): their owners hear of them here;
# report.build and report.lifecycle_events list them too.
_LISTED = ("blocked", "attention", "held", "overdue", "exempt")


def _subject(summary: dict) -> str:
    parts = [f"{summary[k]} {label}" for k, label in _COUNTED.items() if summary[k]]
    if summary.get("unreachableAccounts"):
        parts.append(f"{summary['unreachableAccounts']} account(s) not reached")
    if summary.get("error"):
        parts.append("run failed")
    prefix = "[dry run] " if summary["dryRun"] else ""
    return f"{prefix}IAM access key rotation {summary['time']}: {', '.join(parts) or 'nothing to do'}"

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


def _label(item: dict) -> str:
    """A user as reports name it: ``<account>/<name>`` when the entry carries its account (_labelled keeps it only
    when the hub manages several accounts)."""
    return f"{item['account']}/{item['user']}" if item.get("account") else item["user"]


def _labelled(entry: dict, settings) -> dict:
    """An entry as reports show it: with its account when the hub manages several, without it for one account, so
    one account's reports read as they always did."""
    return entry if settings.many_accounts else {k: v for k, v in entry.items() if k != "account"}


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

def _summary_text(summary: dict) -> str:
    """The summary as JSON for a Fail state's cause: whole when it fits, else the counts alone."""
    text = json.dumps(summary)
    if len(text) <= MAX_FAILURE_CAUSE_CHARS:
        return text
    return json.dumps({k: v for k, v in summary.items() if k != "users"} | {"users": "see the execution history"})
