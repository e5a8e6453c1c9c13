"""Patches that make moto behave like AWS for this workflow, and run it fast and in-process.

Where moto differs from AWS, one line each: the AWS behaviour each patch restores (none bends the ASL).
Step Functions
- aws-sdk errors are named as AWS names them: ``Iam.NoSuchEntityException`` for an error in the service's
  model, ``Iam.IamException`` for one outside it (IAM's Throttling and AccessDenied among them);
- SDK results and ``$$.Execution.StartTime`` reach the state machine as ISO strings, not datetimes;
- aws-sdk Tasks take and return PascalCase members for every service (sfn's camelCase API included); moto
  passes both as given;
- ``lambda:invoke`` runs the real handler from its code directory, one at a time, with the function's environment
  seen by that invocation's thread only (each invocation has its own environment on AWS), and by the threads the
  handler starts (the environment is its process's on AWS); each emulated account starts with cold functions
  (lambda_runtime);
- time passes with every AWS call and state transition; ``$$.State.EnteredTime`` has milliseconds and a Z (strict_aws);
- a Distributed Map's items are child executions with their own histories, listed by map run (distributed_map);
- a Distributed Map past its ToleratedFailureCount/Percentage fails with States.ExceedToleratedFailureThreshold;
  moto lets it succeed (distributed_map);
- ResultWriter writes each child execution to SUCCEEDED_0.json/FAILED_0.json and lists them in manifest.json;
  moto writes an empty manifest (distributed_map);
- a Map's worker takes item after item in a loop; moto recurses per item and hangs at about 900 (distributed_map).
IAM and STS
- dates (CreateDate) are whole seconds, from the emulator's clock (strict_aws);
- user names are unique whatever their letter case and found by any spelling (strict_aws);
- a renamed or moved user keeps its tags and keys (strict_aws);
- a user has at most 50 tags: TagUser past that is LimitExceeded (strict_aws);
- two keys per user, even for two CreateAccessKey calls at once (strict_aws: one call at a time);
- ListUsers and GetAccountAuthorizationDetails return pages of at most MaxItems (default 100) with a Marker;
  moto returns one page;
- the credential report is a snapshot up to four hours old, takes time to write, shows no date for a slot
  without an Active key, and its GeneratedTime is real (credential_report);
- GetCallerIdentity rejects a key that is not an Active key of an IAM user or a role session's
  (InvalidClientTokenId); moto answers "user/moto" for any key. (The signature is not checked: a wrong secret
  still passes.) The emulator's own calls answer as the default account's root, as moto does.
Several accounts (cross_account, whose docstring lists each)
- a Task's Credentials act in their role's account; AssumeRole checks that the role exists and trusts the caller;
  a Lambda handler runs as its function's role.
Secrets Manager
- a name takes letters, digits and /_+=.@- only: CreateSecret refuses others (ValidationException) (strict_aws);
- its store survives a parallel Map: moto's is not thread-safe (strict_aws: one call at a time);
- its dates come from the emulator's clock (strict_aws).
Speed (not AWS behaviour: the emulator would otherwise take minutes)
- executions run synchronously on the caller's thread; Retry backoff and boto3's own retries inside the
  Lambda record their delays instead of sleeping;
- boto3 clients inside the interpreter are reused, by every account of the process (an SDK task drops from ~13 ms
  to ~3 ms; one attempt each, they keep no state between calls);
- the rest, each AWS call cheaper and each ASL and JSONPath parsed once: speed.py.
Reproducible ids (not AWS behaviour: two runs of a fixture print the same)
- each new access key draws its id and secret from a generator of its own (seed, user, keys issued so far), not
  from moto's shared sequence, which a parallel Map's threads consume in varying order (deterministic).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import threading
import time
from pathlib import Path
from unittest import mock

import boto3
from botocore.config import Config

from .credential_report import credential_reports_as_aws_makes_them
from .cross_account import TaskRole, several_accounts
from .deterministic import key_ids_of_their_own
from .distributed_map import distributed_map
from .lambda_runtime import call_handler, cold_functions, environment_of_each_invocation
from .speed import faster_emulation
from .strict_aws import strict_aws

# AWS's service part of aws-sdk error names (ServiceName.ErrorNameException).
SERVICE_ERROR_NAMES = {"iam": "Iam", "secretsmanager": "SecretsManager", "ses": "Ses", "sns": "Sns", "sts": "Sts", "lambda": "Lambda", "sfn": "Sfn"}
# The interpreter's clients: one attempt each (Retry is the state machine's), no client-side validation.
SDK_TASK_CONFIG = Config(parameter_validation=False, retries={"total_max_attempts": 1})
_INTERPRETER_CLIENTS: dict[tuple[str, str], object] = {}  # (region, service) -> the client
_INTERPRETER_CLIENTS_LOCK = threading.Lock()


class Clock:
    """The emulated account's "now": the one clock of IAM, Secrets Manager and Step Functions on the emulator.
    It moves when a test advances it and, as on AWS, with every AWS call and state transition (strict_aws)."""

    def __init__(self, now: dt.datetime | None = None):
        self.now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self._lock = threading.Lock()

        self.runs = 0  # executions running now: only they make time pass (a test's own reads do not)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Time passes for an AWS call or a state transition, while an execution runs."""
        with self._lock:  # a parallel Map's iterations move it from several threads
            if self.runs:
                self.now += delta
            return self.now

    def move_to_at_least(self, moment: dt.datetime) -> None:
        with self._lock:
            self.now = max(self.now, moment)

    @contextlib.contextmanager
    def running(self):
        with self._lock:
            self.runs += 1
        try:
            yield
        finally:
            with self._lock:
                self.runs -= 1

    def naive_utc(self) -> dt.datetime:
        return self.now.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def iso(self) -> str:
        return self.now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Recorder:
    """What happened beneath the workflow: Retry backoff delays asked for (seconds, in order), every secret
    access key IAM issued, so tests can scan for it even after the key is deleted, and every event put on a bus."""

    def __init__(self):
        self.retry_delays: list[float] = []
        self.sdk_retry_delays: list[float] = []  # boto3's backoff inside the Lambda functions
        self.issued_secrets: set[str] = set()
        self.events_put: list[str] = []  # the Detail of every event put on a bus, so runs can be scanned
        self.child_executions = None  # the Distributed Map children (distributed_map.ChildExecutions)


def _iso(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _list_users_in_pages(response):
    """IAM ListUsers as AWS pages it: MaxItems (default 100) per page, IsTruncated and an opaque Marker."""
    users = list(response.backend.list_users(response._get_param("PathPrefix"), None, None))
    return _a_page(response, "Users", users)


def _account_details_in_pages(response):
    """IAM GetAccountAuthorizationDetails as AWS pages it (users only, as this workflow asks): MaxItems (default
    100, at most 1000) per page, IsTruncated and an opaque Marker. moto returns everything at once."""
    details = response.backend.get_account_authorization_details(response._get_param("Filter", []))
    return _a_page(response, "UserDetailList", list(details["users"]), GroupDetailList=[], RoleDetailList=[], Policies=[])


def _a_page(response, field: str, items: list, **rest):
    from moto.core.responses import ActionResult

    start = int(response._get_param("Marker") or 0)
    end = start + min(int(response._get_param("MaxItems") or 100), 1000)
    result = {field: items[start:end], **rest, "IsTruncated": end < len(items)}
    if result["IsTruncated"]:
        result["Marker"] = str(end)
    return ActionResult(result)


def _aws_error_name(service: str, error) -> str:
    """ServiceName.ErrorNameException; botocore raises a plain ClientError for a code outside the model."""
    service_name = SERVICE_ERROR_NAMES.get(service.lower(), service)
    error_name = service_name if type(error).__name__ == "ClientError" else type(error).__name__
    name = f"{service_name}.{error_name}"
    return name if name.endswith("Exception") else name + "Exception"


@contextlib.contextmanager
def faithful_moto(
    clock: Clock, functions: dict[str, tuple[Path, str]], recorder: Recorder | None = None, strict: bool = True,
    seed: int = 0,
):
    """Apply the patches. ``functions`` maps a Lambda function name to (code directory, "module.handler").
    ``strict=False`` leaves out strict_aws, for the tests that show what plain moto would let through; ``seed``
    is the one moto's id generator was given, from which each access key's own generator is derived."""
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.iam.models import IAMBackend
    from moto.iam.responses import IamResponse
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3 as item_reader_s3
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as result_writer_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    recorder = recorder or Recorder()
    sdk_task = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    accounts = None  # cross_account.Accounts, when strict

    def cached_client(region, service, state_credentials=None):
        if isinstance(state_credentials, TaskRole):  # a Task with Credentials (strict only): the role's account
            return accounts.task_client(region, service, state_credentials, SDK_TASK_CONFIG)
        with _INTERPRETER_CLIENTS_LOCK:
            if (region, service) not in _INTERPRETER_CLIENTS:
                _INTERPRETER_CLIENTS[region, service] = boto3.client(
                    service, region_name=region, aws_access_key_id="ak", aws_secret_access_key="sk", config=SDK_TASK_CONFIG
                )
            return _INTERPRETER_CLIENTS[region, service]

    def start_synchronously(worker):
        worker._evaluation_details.execution_details.start_time = clock.iso()
        with clock.running():
            worker._execution_logic()

    original_eval = sdk_task._eval_service_task

    def parameters_in_the_apis_casing(task, parameters, *args, **kwargs):
        task._to_boto_request(parameters, _operation_model(task._get_boto_service_name(), task.resource.api_action).input_shape)

    def response_in_pascal_case(task, response, *args, **kwargs):
        task._from_boto_response(response, _operation_model(task._get_boto_service_name(), task.resource.api_action).output_shape)

    def eval_with_iso_dates(self, env, *args, **kwargs):
        original_eval(self, env, *args, **kwargs)
        env.stack.append(_iso(env.stack.pop()))

    class NoSleep:
        @staticmethod
        def sleep(seconds):
            recorder.retry_delays.append(seconds)

        def __getattr__(self, name):
            return getattr(time, name)

    def invoke_in_process(backend, function_name, qualifier, body, headers, response_headers):
        fn = backend.get_function(function_name, qualifier)
        code_dir, handler_path = functions[fn.function_name]
        event = json.loads(body or "{}")
        environment = {**(fn.environment_vars or {}), **(accounts.environment_of(fn) if accounts else {})}
        try:
            result = call_handler(code_dir, handler_path, environment, event, fn.timeout)
        except Exception as error:  # Lambda reports an unhandled error this way
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {"errorType": type(error).__name__, "errorMessage": str(error)}
        return json.dumps(result).encode()

    create_access_key = IAMBackend.create_access_key

    from moto.events.models import EventsBackend

    put_events = EventsBackend.put_events

    def recording_put_events(backend, events):
        recorder.events_put.extend(str(e.get("Detail", "")) for e in events)
        return put_events(backend, events)

    def recording_create_access_key(backend, *args, **kwargs):
        key = create_access_key(backend, *args, **kwargs)
        recorder.issued_secrets.add(key.secret_access_key)
        return key

    from botocore.retries.standard import ExponentialBackoff
    from moto.sts.models import STSBackend

    sdk_delay = ExponentialBackoff.delay_amount

    def recorded_sdk_delay(self, context):
        recorder.sdk_retry_delays.append(sdk_delay(self, context))
        return 0

    def caller_identity_of_active_keys(backend, access_key_id, region):
        from moto.iam.models import iam_backends
        from moto.sts.exceptions import STSClientError

        session = backend.get_assumed_role_from_access_key(access_key_id)
        if session is not None:  # a role session's keys, as moto answers them
            return session.user_id, session.arn, session.account_id
        if access_key_id in _EMULATOR_KEYS:  # the emulator's own calls: moto's default identity, as moto answers it
            return backend.account_id, f"arn:aws:iam::{backend.account_id}:root", backend.account_id
        iam = iam_backends[backend.account_id][backend.partition]
        user = iam.get_user_from_access_key_id(access_key_id)
        key = user and next(k for k in user.access_keys if k.access_key_id == access_key_id)
        if key is None or key.status != "Active":
            error = STSClientError("InvalidClientTokenId", "The security token included in the request is invalid.")
            raise error
        return user.id, user.arn, user.account_id

    patches = [
        mock.patch.object(ExponentialBackoff, "delay_amount", recorded_sdk_delay),
        mock.patch.object(STSBackend, "get_caller_identity", caller_identity_of_active_keys),
        mock.patch.object(ExecutionWorker, "start", start_synchronously),
        mock.patch.object(sdk_task, "_eval_service_task", eval_with_iso_dates),
        mock.patch.object(sdk_task, "_normalise_parameters", parameters_in_the_apis_casing),
        mock.patch.object(sdk_task, "_normalise_response", response_in_pascal_case),
        mock.patch.object(sdk_task, "_normalise_service_error_name", staticmethod(lambda name: name)),
        mock.patch.object(sdk_task, "_normalise_exception_name", staticmethod(_aws_error_name)),
        mock.patch.object(state_task_service_aws_sdk, "boto_client_for", cached_client),
        mock.patch.object(lambda_eval_utils, "boto_client_for", cached_client),
        mock.patch.object(item_reader_s3, "boto_client_for", cached_client),
        mock.patch.object(result_writer_s3, "boto_client_for", cached_client),
        mock.patch.object(retrier_decl, "time", NoSleep()),
        mock.patch.object(WaitFunction, "_wait_interval", lambda self, env, seconds: None),
        mock.patch.object(LambdaSimpleBackend, "invoke", invoke_in_process),
        mock.patch.object(IamResponse, "list_users", _list_users_in_pages),
        mock.patch.object(IamResponse, "get_account_authorization_details", _account_details_in_pages),
        mock.patch.object(IAMBackend, "create_access_key", recording_create_access_key),
        mock.patch.object(EventsBackend, "put_events", recording_put_events),
    ]
    # moto logs each IsPresent miss as an error; real failures are in the execution history instead.
    interpreter_log = logging.getLogger("moto.stepfunctions.parser")
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        stack.enter_context(environment_of_each_invocation())
        cold_functions()
        stack.enter_context(faster_emulation())
        stack.enter_context(key_ids_of_their_own(seed))
        if strict:
            stack.enter_context(strict_aws(clock))
            stack.enter_context(credential_reports_as_aws_makes_them(clock))
            recorder.child_executions = stack.enter_context(distributed_map(clock))
            accounts = stack.enter_context(several_accounts(seed))
        stack.callback(interpreter_log.setLevel, interpreter_log.level)
        interpreter_log.setLevel(logging.CRITICAL)
        yield recorder


@functools.lru_cache(maxsize=64)
def _operation_model(service: str, action: str):
    """botocore's model of an aws-sdk Task's operation (``action`` as the ASL spells it: describeMapRun)."""
    import botocore.session

    return botocore.session.get_session().get_service_model(service).operation_model(action[0].upper() + action[1:])


# The keys the emulator itself calls with (moto's mock environment, runner.FAKE_ENVIRONMENT, cross_account's management clients): never an IAM
# user's key (those are 20 characters), so a deleted or unknown user key is still refused.
_EMULATOR_KEYS = frozenset({"FOOBARKEY", "testing", "emulator", "AKIAEXAMPLE"})  # the last: moto's when it reads none
