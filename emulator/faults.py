"""Fault injection: make one AWS operation of the emulated account fail, once or for good.

The error is raised inside moto's backend as that service's own exception type, so it travels through
moto's real error serialisation and reaches the caller (the Lambda's boto3 or a state machine Task) as the
genuine AWS error, e.g. ``Iam.ThrottlingException`` in a Task's Retry.

Services: iam, secretsmanager, ses, lambda (the invocation itself), sts, kms, stepfunctions.

Helpers for ``when``: ``lambda_function("KeyCheck")`` picks the invocations of one function by its name, and ``about_user("bob")`` every IAM, Secrets Manager,
STS or Lambda call that names one user (its user name, its secret ``<prefix>bob``, one of its access key ids,
or an event's ``"user"``).
``sdk_backoff_recorded()`` makes boto3's legacy-mode retries record their backoff instead of sleeping it, as
faithful_moto does for the state machine's Retry and boto3's standard mode.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from unittest import mock


@dataclass
class Fault:
    calls: int = 0  # calls of the operation while the fault was armed, failed or not
    failures: int = 0
    operation: str = ""  # "service.operation code", for messages


def _backend(service: str):
    if service == "iam":
        from moto.iam.models import IAMBackend

        return IAMBackend
    if service == "secretsmanager":
        from moto.secretsmanager.models import SecretsManagerBackend

        return SecretsManagerBackend
    if service == "ses":
        from moto.ses.models import SESBackend

        return SESBackend
    if service == "lambda":
        from moto.awslambda_simple.models import LambdaSimpleBackend

        return LambdaSimpleBackend
    if service == "sns":
        from moto.sns.models import SNSBackend

        return SNSBackend
    if service == "sts":
        from moto.sts.models import STSBackend

        return STSBackend
    if service == "kms":
        from moto.kms.models import KmsBackend

        return KmsBackend
    if service == "stepfunctions":
        # The backend that answers while executions run (execute_state_machine); it inherits most operations.
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        return StepFunctionsParserBackend
    raise ValueError(f"no fault injection for service {service}")


# HTTP status of the JSON-protocol services' server-side and throttling errors, as AWS sends them.
_STATUS = {
    "ServiceException": 500,
    "TooManyRequestsException": 429,
    "KMSInternalException": 500,
    "ServiceUnavailable": 503,
    "InternalServerError": 500,
    "ThrottlingException": 400,
}


def aws_error(service: str, code: str, message: str = "injected fault"):
    """An exception that moto serialises as the AWS error ``code`` of ``service``."""
    if service == "iam":
        from moto.iam.exceptions import IAMException

        return IAMException(code, message)
    if service == "secretsmanager":
        from moto.secretsmanager.exceptions import SecretsManagerClientError

        error = SecretsManagerClientError(code, message)
        error.code = 500 if code.startswith("Internal") else 400
        return error
    if service == "ses":
        from moto.ses.exceptions import SesError

        return SesError(code, message)
    if service == "lambda":
        from moto.awslambda.exceptions import LambdaClientError

        error = LambdaClientError(code, message)
        error.code = _STATUS.get(code, 400)
        return error
    if service == "sns":
        from moto.sns.exceptions import SNSException

        return SNSException(code, message)
    if service == "sts":
        from moto.sts.exceptions import STSClientError

        return STSClientError(code, message)
    if service == "kms":
        from moto.core.exceptions import JsonRESTError

        error = JsonRESTError(code, message)
        error.code = _STATUS.get(code, 400)
        return error
    if service == "stepfunctions":
        from moto.core.exceptions import AWSError

        return AWSError(message, exception_type=code, status=_STATUS.get(code, 400))
    raise ValueError(f"no fault injection for service {service}")


_runs_in_progress = 0  # state machine executions running now (faithful_moto runs them on the caller's thread)


@contextlib.contextmanager
def _counting_runs():
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._execution_logic

    def counted(self, *args, **kwargs):
        global _runs_in_progress
        _runs_in_progress += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _runs_in_progress -= 1

    with mock.patch.object(ExecutionWorker, "_execution_logic", counted):
        yield


@contextlib.contextmanager
def failing(
    service: str,
    operation: str,
    code: str,
    times: int | None = None,
    when=None,
    after: bool = False,
    runs_only: bool = False,
):
    """While active, ``operation`` (a moto backend method name) of ``service`` raises ``code``.

    ``times``: fail only the first N calls (None: every call). ``when``: a predicate over the call's
    arguments; calls it rejects go through untouched (e.g. fail only one user's calls). ``after``: the
    operation takes effect first and only its response is lost, as with a timeout. ``runs_only``: only calls
    made while a state machine execution runs (the workflow and its Lambdas) count and fail, not the test's
    own reads of the account before and after a run.
    """
    backend = _backend(service)
    original = getattr(backend, operation)
    fault = Fault(operation=f"{service}.{operation} {code}")

    def wrapper(self, *args, **kwargs):
        if (not runs_only or _runs_in_progress) and (when is None or when(*args, **kwargs)):
            fault.calls += 1
            if times is None or fault.failures < times:
                fault.failures += 1
                if after:
                    original(self, *args, **kwargs)
                raise aws_error(service, code)
        return original(self, *args, **kwargs)

    with contextlib.ExitStack() as stack:
        if runs_only:
            stack.enter_context(_counting_runs())
        stack.enter_context(mock.patch.object(backend, operation, wrapper))
        yield fault


# --- predicates for ``when`` -------------------------------------------------------------------------------


def _lambda_invocation(args, kwargs) -> tuple[str, dict]:
    """(function name, event) of a LambdaSimpleBackend.invoke(function_name, qualifier, body, ...) call."""
    function_name = args[0] if args else kwargs.get("function_name", "")
    body = args[2] if len(args) > 2 else kwargs.get("body")
    try:
        event = json.loads(body or "{}")
    except (TypeError, ValueError):
        event = {}
    return str(function_name), event if isinstance(event, dict) else {}


def lambda_function(name_part: str):
    """A ``when`` for ``failing("lambda", "invoke", ...)``: invocations of the function whose name holds this."""

    def matches(*args, **kwargs):
        function_name, _ = _lambda_invocation(args, kwargs)
        return name_part in function_name

    return matches


def about_user(user: str):
    """A ``when`` that matches calls naming ``user``: an argument equal to the name or ending in ``/<name>``
    (a secret name or an ARN), one of the user's access key ids, or a Lambda event whose ``"user"`` is the name."""

    def names_user(value) -> bool:
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return False
        if value == user or value.endswith("/" + user):
            return True
        if value.startswith("AKIA"):  # an access key id (STS GetCallerIdentity signed with it): its owner
            return _owner_of_access_key(value) == user
        if value.startswith("{"):
            try:
                event = json.loads(value)
            except ValueError:
                return False
            return isinstance(event, dict) and event.get("user") == user
        return False

    def matches(*args, **kwargs):
        return any(names_user(v) for v in (*args, *kwargs.values()))

    return matches


def _owner_of_access_key(access_key_id: str) -> str | None:
    from moto.iam.models import iam_backends

    for partitions in iam_backends.values():
        for backend in partitions.values():
            for user in backend.users.values():  # not through list_access_keys, which a fault may be wrapping
                if any(k.access_key_id == access_key_id for k in user.access_keys):
                    return user.name
    return None


@contextlib.contextmanager
def sdk_backoff_recorded():
    """While active, boto3's legacy-mode retries (clients made without a retry config, before or while it is
    active) record each backoff (seconds, in order) in the yielded list and do not sleep. Standard-mode retries
    (the Lambda functions' clients) are recorded by faithful_moto in ``Recorder.sdk_retry_delays``; the state
    machine's own clients make one attempt."""
    from botocore.retryhandler import RetryHandler

    delays: list[float] = []
    decide = RetryHandler.__call__

    def recorded(handler, *args, **kwargs):  # the handler, not the delay function a client keeps from its making
        delay = decide(handler, *args, **kwargs)
        if delay is None:  # no retry
            return None
        delays.append(delay)
        return 0

    with mock.patch.object(RetryHandler, "__call__", recorded):
        yield delays


@contextlib.contextmanager
def in_state(name: str, before=None, after=None):
    """While active, ``before()`` runs as any execution enters the state ``name`` and ``after()`` as it leaves it,
    on that execution's thread and outside any AWS call: a test can hold a run there (the emulator, like AWS,
    never lets one call wait inside another's)."""
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original = CommonStateField._eval_body

    def hooked(state, env):
        if state.name != name:
            return original(state, env)
        if before:
            before()
        try:
            return original(state, env)
        finally:
            if after:
                after()

    with mock.patch.object(CommonStateField, "_eval_body", hooked):
        yield

