"""The fields the state machine and the functions exchange, defined once.

statemachine/rotation.asl.json reads these fields and the functions write them (and the other way round);
tests/test_contract.py checks every field a state reads is defined here or written by an earlier state. Nothing here
is ever secret material: users, key ids, secret names and ARNs, reasons.

A run, in the order the state machine passes them on:
  RunPlan        "Plan the run" -> $.run (the users to plan are in S3, in batches: BatchToPlan items)
  BatchToPlan    one child execution of "Plan each batch of users"; its output is a BatchPlan (in S3)
  Queue          "Queue the actions" -> $.queue (the users to act on are in S3, in batches: ActBatch items)
  ActBatch       one child execution of "Act on each batch of users"; its output is an ActBatchResult (in S3)
  Report         "Report the run" -> $.report (the whole report and the owner emails are in S3)
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

# --- listing users that need a person ---------------------------------------------------------------------------


class Listed(TypedDict):
    """A user listed as blocked, needing attention, or unreadable, with why and what to do."""

    user: str
    reason: str
    owner: NotRequired[str]


class Notice(TypedDict):
    """Advance notice for a user's owner: what happens within NoticeDays."""

    user: str
    notices: list[str]
    owner: NotRequired[str]


# --- the run --------------------------------------------------------------------------------------------------


class RunPlan(TypedDict):
    """What "Plan the run" decided for the whole run, and where its records go."""

    name: str  # the execution's name
    time: str  # "now" for every age (ISO, whole seconds)
    recordedAt: str  # the time written on tags: when the run really acts
    force: bool
    dryRun: bool
    scheduled: bool
    bucket: str
    folder: str  # runs/<name>/: every record of this run
    usersToPlan: str  # the key of the BatchToPlan items
    plansPrefix: str  # where "Plan each batch of users" writes its results
    actsPrefix: str  # where "Act on each batch of users" writes its results
    ownerEmailsPrefix: str  # where "Email each owner" writes its results
    batches: int
    managedUsers: int
    parallelBatches: int
    parallelUsers: int


class SecretView(TypedDict):
    """A user's secret as ListSecrets describes it (never its value)."""

    name: str
    exists: bool
    keyId: str | None  # the key its AWSCURRENT version names, when the workflow wrote it
    foreign: bool  # AWSCURRENT written by someone else
    deleted: bool  # scheduled for deletion


class UserToPlan(TypedDict):
    user: str
    managed: bool  # False: a user the workflow once managed (its secret says so) that left the scope
    why: NotRequired[str]  # for a user that left: how
    exists: NotRequired[bool]  # False: the user was deleted, its secret left
    tags: dict[str, str]  # the tags a decision reads: the workflow's own and the owner tag
    tagCount: int  # all the user's tags: the workflow's must fit within IAM's 50
    secret: SecretView


class BatchToPlan(TypedDict):
    """One child of "Plan each batch of users": one item of RunPlan.usersToPlan."""

    batch: int
    users: list[UserToPlan]
    time: str
    recordedAt: str
    force: bool


class PlanItem(TypedDict):
    """One user's actions as the state machine acts on them: a field is present only when its step runs."""

    user: str
    secretName: str
    outcome: str  # rotate, retire, record or grant
    reason: str
    oldest: str  # the user's oldest key's creation: the most overdue act first
    rotate: NotRequired[bool]
    keyIds: NotRequired[list[str]]  # with rotate: the keys before the run; any other found after a failure is its own
    previousKeyId: NotRequired[str]
    deactivateKeyId: NotRequired[str]
    verifyKeyId: NotRequired[str]  # with deactivateKeyId: the key the secret holds, proven first
    deleteKeyId: NotRequired[str]
    recordTags: NotRequired[list[dict[str, str]]]  # TagUser's Tags
    forgetTags: NotRequired[list[str]]  # UntagUser's TagKeys
    grantConsumer: NotRequired[bool]
    owner: NotRequired[str]


class BatchPlan(TypedDict):
    """A child of "Plan each batch of users" returns this (its output, in S3)."""

    batch: int
    managed: int
    unchanged: int
    actions: list[PlanItem]
    blocked: list[Listed]
    attention: list[Listed]
    unreadable: list[Listed]
    notices: list[Notice]


class Queue(TypedDict):
    """What "Queue the actions" chose to act on (the ActBatch items are in S3)."""

    actions: str  # the key of the ActBatch items
    actionBatches: int
    acting: int
    deferred: int  # past MaxUsersPerRun: wait for the next runs


class ActBatch(TypedDict):
    """One child of "Act on each batch of users": one item of Queue.actions."""

    batch: int
    users: list[PlanItem]
    parallelUsers: int


class Cleanup(TypedDict, total=False):
    deletedKeyId: str
    undeletedKeyId: str


class UserResult(TypedDict):
    """What the steps for one user ended with (the Pass states at the end of each path write it)."""

    user: str
    status: str  # succeeded or failed
    newKeyId: NotRequired[str]
    error: NotRequired[str]
    cause: NotRequired[str]
    cleanup: NotRequired[list[Cleanup]]
    storedKeyId: NotRequired[str]  # the new key, stored and in use although a later step failed
    unchecked: NotRequired[bool]  # the cleanup after a failed store could not run
    checkError: NotRequired[str]


class ActBatchResult(TypedDict):
    """A child of "Act on each batch of users" returns this (its output, in S3)."""

    batch: int
    results: list[UserResult]


class Report(TypedDict):
    """What "Report the run" returns: bounded whatever the account's size; the whole report is in S3."""

    summary: dict
    failed: bool
    failureCause: str
    notify: bool
    recipients: list[str]
    subject: str
    body: str
    summaryText: str
    ownerEmails: int
    ownerEmailsKey: str
    reportKey: str


class OwnerEmail(TypedDict):
    """One item of "Email each owner"."""

    to: list[str]
    subject: str
    body: str

