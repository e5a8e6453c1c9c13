"""An emulated AWS account with the stack deployed, and runs of the state machine through time."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from unittest import mock

import boto3
import decisions
from moto import mock_aws

from . import account, stack
from .faithful_moto import Clock, Recorder, faithful_moto

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
FAKE_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": stack.REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Email:
    source: str
    destinations: list[str]
    subject: str
    body: str


@dataclass
class Run:
    name: str
    time: str
    status: str
    output: dict | None
    error: str | None
    cause: str | None
    events: list[dict]
    emails: list[Email]
    retry_delays: list[float] = field(default_factory=list)
    keys_before: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> {key id: status}
    keys_after: dict[str, dict[str, str]] = field(default_factory=dict)

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def published_texts(self) -> list[str]:
        """Everything the run put where people or other code can read it: output, cause, emails, Lambda payloads."""
        texts = [json.dumps(self.output), self.cause or ""] + [e.subject + e.body for e in self.emails]
        return texts + self.lambda_payloads()

    def lambda_payloads(self) -> list[str]:
        """Every payload that went to or came from the Lambda function, as recorded in the history."""
        found = []
        for e in self.events:
            for details in ("taskScheduledEventDetails", "taskSucceededEventDetails"):
                d = e.get(details)
                if d and d.get("resourceType") == "lambda":
                    found.append(d.get("parameters") or d.get("output") or "")
        return found


class Emulator:
    """``with Emulator(fixture) as aws: aws.scheduled_run()``: a fresh account per instance."""

    def __init__(self, fixture: dict | None = None, parameters: dict | None = None, start: datetime | None = None):
        fixture = fixture or {}
        self.fixture = fixture
        start = start or (decisions.parse_time(fixture["start"]) if "start" in fixture else None)
        self.clock = Clock(start)
        self.schedule = self.clock.now  # the time the next scheduled run is due: what advance() moves
        self.parameters = {**fixture.get("parameters", {}), **(parameters or {})}
        self.recorder = Recorder()
        self._stack = contextlib.ExitStack()
        self.runs: list[Run] = []

    def __enter__(self) -> Emulator:
        try:
            self._stack.enter_context(mock.patch.dict(os.environ, FAKE_ENVIRONMENT))
            self._stack.enter_context(mock_aws(config=MOTO_CONFIG))
            # Patched before the deployment, so CreateStateMachine's validation uses the parsed-once ASL (~0.9 s).
            functions: dict = {}
            self._stack.enter_context(faithful_moto(self.clock, functions, self.recorder))
            self.deployment = stack.deploy(self.parameters)
            functions.update(self.deployment.functions)
            account.seed(self.fixture, self.clock.now, self.secret_prefix)
        except BaseException:
            self._stack.close()  # a half-built account must not outlive a failed start
            raise
        self.sfn = boto3.client("stepfunctions", region_name=stack.REGION)
        return self

    def __exit__(self, *exc):
        self._stack.close()

    @property
    def secret_prefix(self) -> str:
        return self.deployment.parameters["SecretNamePrefix"]

    @property
    def users(self) -> list[str]:
        return [u["name"] for u in self.fixture.get("users", [])]

    def advance(self, days: float) -> None:
        """Move the schedule ``days`` on. The clock follows: to the next scheduled time, or stays where the last
        run left it if that run lasted longer (a run's calls and transitions move the clock too)."""
        self.move_to(self.schedule + timedelta(days=days))

    def move_to(self, moment: datetime) -> None:
        """Set the schedule to ``moment``; the clock never goes back (IAM's dates only ever increase)."""
        self.schedule = moment
        self.clock.move_to_at_least(moment)

    def scheduled_input(self) -> dict:
        """What the EventBridge schedule passes: its scheduled event at the schedule's time, through the rule's
        InputTransformer."""
        event = stack.scheduled_event(decisions.format_time(self.schedule))
        return json.loads(stack.transform_input(self.deployment.schedule_input, event))

    def scheduled_run(self) -> Run:
        return self.start(self.scheduled_input())

    def start(self, execution_input: dict | str | None) -> Run:
        """Start one execution at the clock's time and return it finished (executions run synchronously)."""
        name = f"run-{len(self.runs) + 1:03d}"
        raw = execution_input if isinstance(execution_input, str) else json.dumps(
            {} if execution_input is None else execution_input
        )
        sent_before = len(_sent_messages())
        delays_before = len(self.recorder.retry_delays)
        keys_before = self._key_statuses()
        started = self.clock.now
        arn = self.sfn.start_execution(stateMachineArn=self.deployment.state_machine_arn, name=name, input=raw)[
            "executionArn"
        ]
        described = self.sfn.describe_execution(executionArn=arn)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        run = Run(
            name=name,
            time=decisions.format_time(started),
            status=described["status"],
            output=json.loads(described["output"]) if described.get("output") else None,
            error=described.get("error"),
            cause=described.get("cause"),
            events=events,
            emails=[Email(m.source, list(m.destinations.get("ToAddresses", [])), m.subject, m.body) for m in _sent_messages()[sent_before:]],
            retry_delays=self.recorder.retry_delays[delays_before:],
            keys_before=keys_before,
            keys_after=self._key_statuses(),
        )
        self.runs.append(run)
        return run

    def _key_statuses(self) -> dict[str, dict[str, str]]:
        return {user: {k.id: k.status for k in account.keys_of(user)} for user in self.users}

    @property
    def issued_secrets(self) -> set[str]:
        """Every secret access key IAM issued in this account, deleted keys' included."""
        return set(self.recorder.issued_secrets)

    def invoke_preflight(self, event: dict) -> tuple[dict, str | None]:
        """Invoke the deployed pre-flight Lambda through the Lambda API: (payload, FunctionError or None)."""
        return self.invoke("PreflightFunction", event)

    def invoke(self, logical_id: str, event: dict) -> tuple[dict, str | None]:
        """Invoke one of the stack's functions by its logical id: (payload, FunctionError or None)."""
        (name,) = [n for n in self.deployment.functions if n.endswith("-" + logical_id)]
        response = boto3.client("lambda", region_name=stack.REGION).invoke(FunctionName=name, Payload=json.dumps(event))
        return json.loads(response["Payload"].read()), response.get("FunctionError")

    def leaked_texts(self, *runs: Run) -> list[str]:
        """The runs' published texts that hold a secret access key IAM issued (deleted keys' included)."""
        secrets = self.issued_secrets
        return [t for run in runs for t in run.published_texts() if any(s in t for s in secrets)]

    def invariant_violations(self, *runs: Run) -> list[str]:
        """The workflow's promises, checked on the account now and on what each given run changed."""
        problems = account.secret_violations(self.users, self.secret_prefix)
        for run in runs:
            for user in self.users:
                before, after = run.keys_before[user], run.keys_after[user]
                problems += [f"{user}: Active key {k} was deleted" for k, s in before.items() if s == "Active" and k not in after]
                held = {v.key_id for v in account.secret_versions(self.secret_prefix + user)}
                problems += [
                    f"{user}: key {k} was created by {run.name} but no secret version holds it"
                    for k in sorted(set(after) - set(before) - held)
                ]
        return problems


def _sent_messages():
    from moto.ses.models import ses_backends

    return ses_backends[stack.ACCOUNT_ID][stack.REGION].sent_messages



