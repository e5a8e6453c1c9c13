"""Queue the actions: between planning and acting. Reads what every batch planned (the run bucket), chooses what to
act on, the most overdue first (and no more than MaxUsersPerRun, when set), and writes it, in batches, for "Act on
each batch of users"; writes the rest of the plan (blocked, attention, held, overdue, exempt, unreadable users, notices) for the report.

Event: ``{"run": RunPlan, "plans": <the Map's output: MapRunArn, ResultWriterDetails>}``. Result: a contract.Queue.
"""

from __future__ import annotations

import logging

import reading
import run_records
from contract import ActBatch, BatchPlan, Listed, Queue, RunPlan
from settings import Settings

# What a batch's plan lists besides its actions: users nothing is done for, and notices.
LISTED = ("blocked", "attention", "held", "overdue", "exempt", "unreadable", "notices")

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    return queue_actions(event["run"], event["plans"], Settings.from_env(), reading.client("s3"))


def queue_actions(run: RunPlan, plans: dict, settings: Settings, s3) -> Queue:
    planned, failed = run_records.map_run_results(s3, plans)
    # Users the credential report showed need nothing were not planned batch by batch: unchanged.
    untouched = run.get("untouchedUsers", 0)  # 0 in a run planned before the field existed
    summary = {"managed": untouched, "unchanged": untouched, **{listed: [] for listed in LISTED}}
    actions = []
    for _, batch in planned:
        batch: BatchPlan
        summary["managed"] += batch["managed"]
        summary["unchanged"] += batch["unchanged"]
        for listed in LISTED:
            summary[listed] += batch[listed]
        actions += batch["actions"]
    for given, error, cause in failed:  # a batch that could not be planned: its users wait for the next run
        reason = f"could not be planned ({error}: {cause[:300]}), so nothing was changed for this user; the next run tries again"
        summary["unreadable"] += [Listed(user=u["user"], reason=reason, account=u["account"]) for u in given["users"]]
        summary["managed"] += sum(u["managed"] for u in given["users"])

    # The most overdue first: under a cap, those wait least.
    actions.sort(key=lambda item: (item["oldest"], item["user"]))
    cap = settings.max_users_per_run or len(actions)
    acting, deferred = actions[:cap], actions[cap:]
    summary["deferred"] = len(deferred)
    batches = [
        ActBatch(batch=n, users=users, parallelUsers=run["parallelUsers"])
        for n, users in enumerate(run_records.in_batches(acting, run_records.MAX_ACT_BATCH_USERS))
    ]
    run_records.write_json(s3, run["bucket"], run["folder"] + "plan.json", {**summary, "actions": acting})
    key = run_records.write_json(s3, run["bucket"], run["folder"] + "actions.json", batches)
    logger.info("%d users to act on in %d batches; %d deferred; %d batches not planned", len(acting), len(batches), len(deferred), len(failed))
    return Queue(actions=key, actionBatches=len(batches), acting=len(acting), deferred=len(deferred))
