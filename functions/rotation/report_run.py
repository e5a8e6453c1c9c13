"""Report the run: after acting, or after the run failed. Reads the run's records (the plan, and what each user's
steps ended with) from the run bucket; writes the whole report and the owner emails there; puts a lifecycle event
for every change on the bus (docs/events.md); returns what the state
machine carries, bounded whatever the account's size (contract.Report): the summary, the team's email, the
failure's cause.

Event: ``{"run": RunPlan | null, "queue": Queue | null, "acts": <the Map's output> | null, "runError": ...,
"startTime": ...}``. A run that failed before it planned has no records: its report says why.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import reading
import report
import run_records
from contract import Report
from settings import Settings

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    return report_run(event, Settings.from_env(), reading.client("s3"), reading.client("events"))


def report_run(event: dict, settings: Settings, s3, events=None) -> Report:
    run, queue, acts = event.get("run"), event.get("queue"), event.get("acts")
    plan, results = {}, []
    if run and queue:
        planned = run_records.read_json(s3, run["bucket"], run["folder"] + "plan.json")
        plan = {
            "time": run["time"],
            "dryRun": run["dryRun"],
            "managedUsers": planned["managed"],
            "unchangedUsers": planned["unchanged"],
            "deferredUsers": planned["deferred"],
            **{k: planned[k] for k in ("actions", "blocked", "attention", "held", "overdue", "exempt", "unreadable", "notices")},
        }
    if run and run.get("unreachableAccountsKey"):  # accounts the run could not act in: reported, and fail the run
        plan["unreachableAccounts"] = run_records.read_json(s3, run["bucket"], run["unreachableAccountsKey"])
    if run:
        plan["accounts"] = run.get("accounts", 1)
    if acts:
        done, failed = run_records.map_run_results(s3, acts)
        results = [result for _, batch in done for result in batch["results"]]
        for given, error, cause in failed:  # a batch whose steps did not end: its users have no result
            logger.info("batch %s of users did not finish: %s %s", given.get("batch"), error, cause[:300])
    where = f"s3://{run['bucket']}/{run['folder']}report.json" if run else ""
    built, everyone, owner_emails = report.build(plan, results, event.get("runError"), settings, where, event.get("startTime"))
    if run and events is not None:
        lifecycle = report.lifecycle_events(plan, results, run["name"], settings.account_id)
        unsent = put_events(events, settings.event_bus, lifecycle)
        if unsent:
            built["failed"] = True
            built["failureCause"] = (
                f"{len(unsent)} of {len(lifecycle)} lifecycle events were not put on the event bus {settings.event_bus} "
                f"({'; '.join(sorted(set(unsent)))[:500]}); the rotation itself is done. "
                + (built["failureCause"] or "Summary: " + built["summaryText"])
            )
    owner_emails_key = ""
    if run:
        run_records.write_json(s3, run["bucket"], run["folder"] + "report.json", {**built["summary"], "users": everyone})
        if owner_emails:
            owner_emails_key = run_records.write_json(s3, run["bucket"], run["folder"] + "owner-emails.json", owner_emails)
    return Report(**built, ownerEmails=len(owner_emails), ownerEmailsKey=owner_emails_key, reportKey=where)


PUT_EVENTS_BATCH = 10  # PutEvents takes at most ten entries a call
PUT_EVENTS_TRIES = 3


def put_events(events, bus: str, lifecycle: list[tuple[str, dict]]) -> list[str]:
    """Put every lifecycle event on ``bus``, ten a call, a few calls at once; entries EventBridge refuses are tried
    again. Returns the error of each entry that never went through."""
    entries = [
        {"Source": report.EVENT_SOURCE, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": bus}
        for detail_type, detail in lifecycle
    ]

    def put(batch: list[dict]) -> list[str]:
        for _ in range(PUT_EVENTS_TRIES):
            answer = events.put_events(Entries=batch)
            if not answer.get("FailedEntryCount"):
                return []
            failed = [(e, r) for e, r in zip(batch, answer["Entries"]) if r.get("ErrorCode")]
            batch = [e for e, _ in failed]
        return [f"{r.get('ErrorCode')}: {r.get('ErrorMessage', '')}" for _, r in failed]

    batches = [entries[i : i + PUT_EVENTS_BATCH] for i in range(0, len(entries), PUT_EVENTS_BATCH)]
    with ThreadPoolExecutor(4) as pool:
        return [error for errors in pool.map(put, batches) for error in errors]
