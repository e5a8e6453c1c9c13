"""The fields the state machine and the functions exchange, defined once.

statemachine/rotation.asl.json reads these fields and the functions write them (and the other way round);
tests/test_contract.py checks every field a state reads is defined here or written by an earlier state. Nothing here
is ever secret material: users, key ids, secret names and ARNs, reasons.

A run, in the order the state machine passes them on (each function's event is an ...Event, or the item it acts on):
  PlanRunEvent   the execution's input and context, to "Plan the run"
  RunPlan        "Plan the run" -> $.run (the users to plan are in S3, in batches: BatchToPlan items)
  BatchToPlan    one child execution of "Plan each batch of users"; its output is a BatchPlan (in S3)
  QueueEvent     $.run and the plans' results, to "Queue the actions"
  Queue          "Queue the actions" -> $.queue (the users to act on are in S3, in batches: ActBatch items)
  ActBatch       one child execution of "Act on each batch of users"; its output is an ActBatchResult (in S3)
                 in it, for one user (a PlanItem): KeyCheckEvent, KeyStatusEvent, ReconcileEvent and their results
  ReportEvent    $.run, $.queue, the acts' results and any run error, to "Report the run"
  Report         "Report the run" -> $.report (the whole report and the owner emails are in S3)
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

# --- listing users that need a person ---------------------------------------------------------------------------


class Listed(TypedDict):
    """A user listed as blocked, needing attention, held, overdue, exempt or unreadable, with why and what to do."""

    user: str
    account: NotRequired[str]
    reason: str
    owner: NotRequired[str]


class Notice(TypedDict):
    """Advance notice for a user's owner: what happens within NoticeDays."""

    user: str
    account: NotRequired[str]
    notices: list[str]
    owner: NotRequired[str]


# --- the run --------------------------------------------------------------------------------------------------


class PlanRunEvent(TypedDict):
    """What "Plan the run" is given: the execution's input (the schedule's, or a person's) and its context."""

    input: object  # parsed and checked by decisions.parse_run_request
    startTime: str
    execution: str  # the execution's ARN
    executionName: str
    stateMachine: str  # the state machine's ARN


class AccountProblem(TypedDict):
    """A managed account the run could not act in (its member role missing or denied, or the account suspended)."""

    account: str
    reason: str  # why, and the fix
    failsRun: bool  # False only for one found in an OU or the organization: SUSPENDED, or the management account without its member role


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
    untouchedUsers: int  # managed users the credential report shows need nothing: unchanged, their keys not read
    accounts: int  # the accounts in the run's scope
    unreachableAccounts: int
    unreachableAccountsKey: str  # the key of the AccountProblem list, when any
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
    account: str  # the managed account the user is in
    role: str  # the member role that acts on it there
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
    account: str
    role: str  # every IAM and Secrets Manager Task's Credentials.RoleArn: the member role of the user's account
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
    held: list[Listed]  # the previous key is still in use: it stays Active
    overdue: list[Listed]  # held, and older than MaxKeyAgeDays: the run fails so the alarm fires
    exempt: list[Listed]  # exempted by tag (KeyRotationExemptUntil): listed in every report
    unreadable: list[Listed]
    notices: list[Notice]


class Queue(TypedDict):
    """What "Queue the actions" chose to act on (the ActBatch items are in S3)."""

    actions: str  # the key of the ActBatch items
    actionBatches: int
    acting: int
    deferred: int  # past MaxUsersPerRun: wait for the next runs


class QueueEvent(TypedDict):
    """What "Queue the actions" is given."""

    run: RunPlan
    plans: dict  # "Plan each batch of users"'s ResultWriter details: where the BatchPlans are


class ActBatch(TypedDict):
    """One child of "Act on each batch of users": one item of Queue.actions."""

    batch: int
    users: list[PlanItem]
    parallelUsers: int


class KeyCheckEvent(TypedDict):
    """"Prove the stored key works" (functions/key_check) is given a user, its secret and the key it should hold."""

    user: str
    account: str  # the function acts there as its member role
    secretName: str
    keyId: str


class KeyCheckResult(TypedDict):
    user: str
    keyId: str
    authenticatesAs: str  # the ARN GetCallerIdentity answered with the stored key


class KeyStatusEvent(TypedDict):
    """"Check the key is still inactive" is given a user and the key about to be deleted."""

    user: str
    account: str  # the function acts there as its member role
    keyId: str


class KeyStatusResult(TypedDict):
    status: str  # Active, Inactive or Missing


class ReconcileEvent(TypedDict):
    """"Look for unstored keys", after a failed create or store, is given what the rotation knew before."""

    user: str
    account: str  # the function acts there as its member role
    secretName: str
    knownKeyIds: list[str]  # the user's keys before the run
    since: str  # when the rotation began to create the new key


class ReconcileResult(TypedDict):
    storedKeyId: str | None  # the new key the secret holds after all
    secretArn: str | None  # with storedKeyId: that secret
    deleteKeyIds: list[str]  # keys this run created that nobody holds


class Cleanup(TypedDict, total=False):
    deletedKeyId: str
    undeletedKeyId: str


class UserResult(TypedDict):
    """What the steps for one user ended with (the Pass states at the end of each path write it)."""

    user: str
    account: str
    status: str  # succeeded or failed
    newKeyId: NotRequired[str]
    # With newKeyId: the store's answer (PutSecretValue's or CreateSecret's: the secret's ARN, Name, VersionId;
    # never the value), or after a store that only seemed to fail, the ARN and version the cleanup found.
    stored: NotRequired[dict]
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


class ReportEvent(TypedDict):
    """What "Report the run" is given; after a failure before acting, queue and acts are null."""

    run: RunPlan | None
    queue: Queue | None
    acts: dict | None  # "Act on each batch of users"'s ResultWriter details: where the ActBatchResults are
    runError: dict | None  # {Error, Cause} of a failure that stopped the run
    startTime: str


class Report(TypedDict):
    """What "Report the run" returns: bounded whatever the account's size; the whole report is in S3."""

    summary: dict
    failed: bool
    failureCause: str
    notify: bool
    recipients: list[str]
    subject: str
    topicSubject: str  # the subject cut to SNS's 100 characters
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

