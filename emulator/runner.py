"""An emulated AWS account with the stack deployed, and runs of the state machine through time. What is checked of
each run (the README's invariants, the scan for published secrets) is in checks.py."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from unittest import mock

import decisions
from botocore.exceptions import BotoCoreError, ClientError
from moto import mock_aws
from moto.moto_api._internal import mock_random

from . import account, checks, cross_account, deployments, member_stack, stack
from .checks import AccountState
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
    input: object = None  # the execution input, parsed (None when it was not JSON)
    children: list = field(default_factory=list)  # its Distributed Maps' child executions (distributed_map.ChildExecution)
    records: dict[str, str] = field(default_factory=dict)  # what it wrote to the run bucket, by key
    published: list[tuple[str, str]] = field(default_factory=list)  # (subject, message) it put on the report topic
    events_put: list[str] = field(default_factory=list)  # the detail of each lifecycle event it put on the bus
    accounts: dict[str, AccountState] = field(default_factory=dict)  # every account's, the hub's included, by id

    # The hub's account, as a single-account run knows it: every user -> {key id: status}, every workflow secret by
    # name, and the secrets it wrote whose value names another key.
    @property
    def keys_before(self) -> dict[str, dict[str, str]]:
        return self.accounts[stack.ACCOUNT_ID].keys_before

    @property
    def keys_after(self) -> dict[str, dict[str, str]]:
        return self.accounts[stack.ACCOUNT_ID].keys_after

    @property
    def secrets_before(self) -> dict[str, account.SecretState]:
        return self.accounts[stack.ACCOUNT_ID].secrets_before

    @property
    def secrets_after(self) -> dict[str, account.SecretState]:
        return self.accounts[stack.ACCOUNT_ID].secrets_after

    @property
    def mismatched_values(self) -> list[str]:
        return self.accounts[stack.ACCOUNT_ID].mismatched_values

    @property
    def summary(self) -> dict | None:
        """The run's summary: its output, or after a failure the JSON its cause ends with (None when neither)."""
        if self.output is not None:
            return self.output
        if self.cause and "Summary: " in self.cause:
            return json.loads(self.cause.split("Summary: ", 1)[1])
        return None

    @property
    def unreachable_accounts(self) -> list[dict]:
        """The accounts the run could not manage, as it recorded them in the run bucket: account, reason, failsRun."""
        return json.loads(self.records.get(f"runs/{self.name}/accounts.json", "[]"))

    def histories(self) -> list[list[dict]]:
        """The run's own history and each child execution's."""
        return [self.events] + [child.events for child in self.children]

    def states_entered(self) -> list[str]:
        """Every state the run entered: its own, then each child execution's, in order."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.all_events() if "stateEnteredEventDetails" in e]

    def all_events(self) -> list[dict]:
        """The run's history, then each child execution's."""
        return [event for history in self.histories() for event in history]

    def report_texts(self) -> list[str]:
        """What the run tells people: its output, its failure's cause, its emails, its reports on the topic."""
        return (
            [json.dumps(self.output), self.cause or ""]
            + [e.subject + e.body for e in self.emails]
            + [subject + message for subject, message in self.published]
        )

    def published_texts(self) -> list[str]:
        """Everything the run put where people or other code can read it: its report, the Lambda payloads, its
        records in the run bucket and its lifecycle events."""
        return self.report_texts() + self.lambda_payloads() + list(self.records.values()) + self.events_put

    def lambda_payloads(self) -> list[str]:
        """Every payload that went to or came from the Lambda function, as recorded in the history."""
        found = []
        for e in (event for history in self.histories() for event in history):
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
        self.consumers: dict[str, datetime] = {}  # keys a consumer keeps using, until when
        self._run_numbers = itertools.count(1)
        self.member_accounts: dict[str, str] = {}  # the organization's member accounts by name (fixture "organization")

    def __enter__(self) -> Emulator:
        try:
            self._stack.enter_context(mock.patch.dict(os.environ, FAKE_ENVIRONMENT))
            self._stack.enter_context(mock_aws(config=MOTO_CONFIG))
            # moto draws every id (key ids, secret keys, version ids) from one generator: seeded, the same fixture
            # gives the same ids, so outputs diff cleanly and a failing example replays exactly. Access keys draw
            # from generators derived from the seed (deterministic.py): a parallel Map creates them in any order.
            seed = self.fixture.get("seed", 0)
            mock_random.seed(seed)
            # Patched before the deployment, so CreateStateMachine's validation uses the parsed-once ASL (~0.9 s).
            functions: dict = {}
            self._stack.enter_context(faithful_moto(self.clock, functions, self.recorder, seed=seed))
            key = json.dumps([self.parameters, seed, self.clock.iso()], sort_keys=True)
            try:
                self.deployment = deployments.deployed(key, lambda: stack.deploy(self.parameters), stack.ACCOUNT_ID, stack.REGION)
            except (ClientError, BotoCoreError) as error:  # what an AWS API refused: the template's doing
                raise stack.TemplateError(f"the stack could not be deployed: {error}") from error
            functions.update(self.deployment.functions)
            self.consumers = account.seed(self.fixture, self.clock.now, self.secret_prefix)
            self.member_accounts = self._organization(self.fixture.get("organization"))
        except BaseException:
            self._stack.close()  # a half-built account must not outlive a failed start
            raise
        self.sfn = stack.client("stepfunctions")
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _organization(self, organization: dict | None) -> dict[str, str]:
        """The fixture's organization: member accounts (ids from their names), the member stack deployed through
        member/template.yaml in those that have it (and in the hub's account when ``hubMemberStack``), their users
        seeded. Returns each member account's id by name."""
        if not organization:
            return {}
        specs = organization.get("accounts", [])
        created = cross_account.create_organization([a["name"] for a in specs])
        parameters = self.deployment.parameters
        member_parameters = {
            "HubAccountId": stack.ACCOUNT_ID,
            "MemberRoleName": parameters["MemberRoleName"],
            "UserPath": parameters["UserPath"],
            "SecretNamePrefix": parameters["SecretNamePrefix"],
            "AllowConsumerPolicy": "true" if parameters.get("ConsumerPrincipalArn") else "false",
        }
        if organization.get("hubMemberStack"):
            member_stack.deploy_member(stack.client, member_parameters, stack.ACCOUNT_ID)
        for spec in specs:
            account_id = created.members[spec["name"]]
            if spec.get("memberStack", True):
                member_stack.deploy_member(
                    lambda service, a=account_id: cross_account.client_in(a, service), member_parameters, account_id
                )
            self.consumers.update(account.seed(spec, self.clock.now, self.secret_prefix, account_id))
            if spec.get("status", "ACTIVE") == "SUSPENDED":
                cross_account.suspend(account_id)
        return created.members

    def member_users(self) -> list[tuple[str, str, list[dict]]]:
        """Each member account of the fixture's organization: (name, id, its users' specs), in the fixture's order."""
        specs = (self.fixture.get("organization") or {}).get("accounts", [])
        return [(spec["name"], self.member_accounts[spec["name"]], spec.get("users", [])) for spec in specs]

    @property
    def accounts_left_without_the_member_stack(self) -> set[str]:
        """The member accounts the fixture deploys no member stack to: no run can reach them, on purpose."""
        specs = (self.fixture.get("organization") or {}).get("accounts", [])
        return {self.member_accounts[s["name"]] for s in specs if not s.get("memberStack", True)}

    @property
    def account_ids(self) -> list[str]:
        """Every account the emulator holds users in: the hub's, then each member's."""
        return [stack.ACCOUNT_ID, *self.member_accounts.values()]

    def _account_states(self) -> dict[str, AccountState]:
        return {a: AccountState(account.account_keys(a), account.workflow_secrets(self.secret_prefix, a)) for a in self.account_ids}

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
        name = f"run-{next(self._run_numbers):03d}"  # numbered as started: two may run at once
        raw = execution_input if isinstance(execution_input, str) else json.dumps(
            {} if execution_input is None else execution_input
        )
        self._consumers_sign()
        sent_before, published_before = len(_sent_messages()), len(_published())
        delays_before, events_before = len(self.recorder.retry_delays), len(self.recorder.events_put)
        accounts = self._account_states()
        started = self.clock.now
        arn = self.sfn.start_execution(stateMachineArn=self.deployment.state_machine_arn, name=name, input=raw)[
            "executionArn"
        ]
        described = self.sfn.describe_execution(executionArn=arn)
        events = _history(arn)
        run = Run(
            name=name,
            time=decisions.format_time(started),
            status=described["status"],
            output=json.loads(described["output"]) if described.get("output") else None,
            error=described.get("error"),
            cause=described.get("cause"),
            events=events,
            emails=[Email(m.source, list(m.destinations.get("ToAddresses", [])), m.subject, m.body) for m in _sent_messages()[sent_before:]],
            published=_published()[published_before:],
            events_put=self.recorder.events_put[events_before:],
            retry_delays=self.recorder.retry_delays[delays_before:],
            accounts=accounts,
        )
        for account_id, state in accounts.items():
            state.keys_after = account.account_keys(account_id)
            state.secrets_after = account.workflow_secrets(self.secret_prefix, account_id)
            state.mismatched_values = [
                name
                for name, after in state.secrets_after.items()
                if after.current_key
                and getattr(state.secrets_before.get(name), "current_version", None) != after.current_version
                and not account.secret_value_matches(name, self.secret_prefix, account_id)
            ]
        with contextlib.suppress(ValueError):
            run.input = json.loads(raw)
        run.records = account.run_records(self.deployment.bucket, f"runs/{name}/")
        map_runs = self.sfn.list_map_runs(executionArn=arn)["mapRuns"]
        run.children = [c for m in map_runs for c in self.recorder.child_executions.by_map_run.get(m["mapRunArn"], [])]
        self.runs.append(run)
        return run

    def _consumers_sign(self) -> None:
        """The fixture's consumers (``usedUntilDay``) signed with their keys up to an hour ago, or until they stopped:
        what GetAccessKeyLastUsed reports to the run about to start."""
        for key_id, until in self.consumers.items():
            with contextlib.suppress(KeyError):  # the key is gone
                account.use_key(key_id, min(self.clock.now - timedelta(hours=1), until))

    def account_users(self) -> dict[str, dict[str, str]]:
        """Every IAM user of the account now, by IAM's spelling, with its keys' statuses."""
        return account.account_keys()

    def managed_users(self, account_id: str = stack.ACCOUNT_ID) -> dict[str, dict[str, str]]:
        """The users the stack manages now in an account (under UserPath, with the scope tag), with their tags."""
        parameters = self.deployment.parameters
        return account.users_in_scope(parameters["UserPath"], parameters["UserTagKey"], parameters["UserTagValue"], account_id)

    def workflow_secrets(self) -> dict[str, account.SecretState]:
        """Every secret under the stack's prefix now, by name."""
        return account.workflow_secrets(self.secret_prefix)

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
        response = stack.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event))
        return json.loads(response["Payload"].read()), response.get("FunctionError")

    def leaked_texts(self, *runs: Run) -> list[str]:
        """The runs' published texts that hold a secret access key IAM issued (deleted keys' included)."""
        return checks.leaked_texts(runs, self.issued_secrets)

    def invariant_violations(self, *runs: Run) -> list[str]:
        """The README's invariants, for what each run did itself (a person's changes are theirs: the run reports
        them, and must not make them worse):
        1. it never deactivates or deletes a working key a secret's AWSCURRENT holds, and every version it writes
           holds an Active key of the secret's user, with the value its version id names;
        2. every key it creates is held by a secret, deleted again, or named in its report with the command to
           delete it;
        3. it never deletes a key that was Active, and it deactivates a key only after the key check proved the
           key its user's secret holds.
        Checked account by account, in checks.py."""
        return checks.invariant_violations(runs, self.secret_prefix)


def _history(execution_arn: str) -> list[dict]:
    """The execution's history as GetExecutionHistory returns it (every page), read from moto's store: the API's
    serialisation and parsing took ~45 ms a run, and the harness's reads must not trip an injected fault."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[stack.ACCOUNT_ID][stack.REGION]
    return [
        {**event, "type": str(getattr(event["type"], "value", event["type"])), "timestamp": _moment(event["timestamp"])}
        for event in backend.get_execution_history(execution_arn)["events"]
    ]


def _moment(value) -> datetime:
    return decisions.parse_time(value) if isinstance(value, str) else value


def _published() -> list[tuple[str, str]]:
    """(subject, message) of every notification published to the account's topics, in order."""
    from moto.sns.models import sns_backends

    topics = sns_backends[stack.ACCOUNT_ID][stack.REGION].topics.values()
    return [(subject or "", message) for topic in topics for _, message, subject, *_ in topic.sent_notifications]


def _sent_messages():
    from moto.ses.models import ses_backends

    return ses_backends[stack.ACCOUNT_ID][stack.REGION].sent_messages



