"""Fault injection: make one AWS operation of the emulated account fail, once or for good.

The error is raised inside moto's backend as that service's own exception type, so it travels through
moto's real error serialisation and reaches the caller (the Lambda's boto3 or a state machine Task) as the
genuine AWS error, e.g. ``Iam.ThrottlingException`` in a Task's Retry.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from unittest import mock


@dataclass
class Fault:
    calls: int = 0  # calls of the operation while the fault was armed, failed or not
    failures: int = 0


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
    raise ValueError(f"no fault injection for service {service}")


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

        return LambdaClientError(code, message)
    raise ValueError(f"no fault injection for service {service}")


@contextlib.contextmanager
def failing(service: str, operation: str, code: str, times: int | None = None, when=None, after: bool = False):
    """While active, ``operation`` (a moto backend method name) of ``service`` raises ``code``.

    ``times``: fail only the first N calls (None: every call). ``when``: a predicate over the call's
    arguments; calls it rejects go through untouched (e.g. fail only one user's calls). ``after``: the
    operation takes effect first and only its response is lost, as with a timeout.
    """
    backend = _backend(service)
    original = getattr(backend, operation)
    fault = Fault()

    def wrapper(self, *args, **kwargs):
        if when is None or when(*args, **kwargs):
            fault.calls += 1
            if times is None or fault.failures < times:
                fault.failures += 1
                if after:
                    original(self, *args, **kwargs)
                raise aws_error(service, code)
        return original(self, *args, **kwargs)

    with mock.patch.object(backend, operation, wrapper):
        yield fault
