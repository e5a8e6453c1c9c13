"""Counting hooks for the benchmark (bench/measure.py): every AWS API call and every Lambda invocation made while an
execution runs on the emulator.

Both the state machine's SDK tasks and the Lambda functions' boto3 calls go through botocore in-process, so
one wrapper around ``BaseClient._make_api_call`` sees them all; moto answers each call inside it. Lambda
invocations are timed around moto's ``LambdaSimpleBackend.invoke`` (which faithful_moto has already replaced
with the in-process handler), so a call made inside a handler, or in a thread pool the handler submits to, is
attributed to that invocation.

Use it inside an entered Emulator, around the run only::

    with metering(exclude=[my_sfn_client]) as meter:
        my_sfn_client.start_execution(...)
    meter.calls, meter.invocations

Calls made through an excluded client (the caller's own start/describe/history reads) are not counted; the
calls they cause (the whole execution runs inside start_execution) are.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from unittest import mock

from botocore.client import BaseClient


@dataclass
class ApiCall:
    service: str  # botocore's service name: iam, secretsmanager, lambda, ses, sts, ...
    operation: str  # AWS's operation name: CreateAccessKey
    params: dict
    caller: str  # "state machine", or the Lambda function whose invocation made it: "lambda:<function>"
    seconds: float  # time inside the call (moto's emulation of it)
    failed: bool = False
    started: float = 0.0  # time.perf_counter() at its start
    invocation: Invocation | None = field(default=None, repr=False)  # the Lambda invocation that made it

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class Invocation:
    function: str
    event: dict
    seconds: float = 0.0
    calls: list[ApiCall] = field(default_factory=list)  # the AWS calls the handler made
    max_in_flight: int = 0  # the most calls it had under way at once (a handler may call from a thread pool)
    request_bytes: int = 0  # the event, as sent
    response_bytes: int = 0  # the result (or error) it returned, as the caller receives it
    large_response_fields: dict[str, int] = field(default_factory=dict)  # bytes per top-level field, if > 64 KiB
    in_flight: int = field(default=0, repr=False)

    @property
    def own_seconds(self) -> float:
        """The handler's own time: its duration less the time at least one of its calls was under way."""
        waited, reach = 0.0, float("-inf")
        for c in sorted(self.calls, key=lambda c: c.started):
            start, end = max(c.started, reach), c.started + c.seconds
            if end > start:
                waited += end - start
                reach = end
        return max(0.0, self.seconds - waited)


@dataclass
class Meter:
    calls: list[ApiCall] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)


def _field_sizes(document) -> dict[str, int]:
    try:
        parsed = json.loads(document)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {key: len(json.dumps(value).encode()) for key, value in parsed.items()}


@contextlib.contextmanager
def metering(exclude=()):
    """Count API calls and Lambda invocations until the block ends (see the module docstring)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    meter = Meter()
    excluded = {id(c) for c in exclude}
    lock = threading.Lock()
    local = threading.local()  # inline Map iterations run on worker threads: each keeps its own stack
    make_api_call = BaseClient._make_api_call
    invoke = LambdaSimpleBackend.invoke

    def stack() -> list[Invocation]:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def counted_call(client, operation_name, api_params):
        if id(client) in excluded:
            return make_api_call(client, operation_name, api_params)
        inside = stack()[-1] if stack() else None
        caller = f"lambda:{inside.function}" if inside else "state machine"
        call = ApiCall(
            client.meta.service_model.service_name, operation_name, dict(api_params or {}), caller, 0.0, invocation=inside
        )
        if inside:
            with lock:
                inside.in_flight += 1
                inside.max_in_flight = max(inside.max_in_flight, inside.in_flight)
        call.started = time.perf_counter()
        try:
            return make_api_call(client, operation_name, api_params)
        except Exception:
            call.failed = True
            raise
        finally:
            call.seconds = time.perf_counter() - call.started
            meter.calls.append(call)  # list.append is atomic: safe from the Map's worker threads
            if inside:
                with lock:
                    inside.in_flight -= 1
                inside.calls.append(call)

    def timed_invoke(backend, function_name, qualifier, body, *args, **kwargs):
        try:
            event = json.loads(body or "{}")
        except ValueError:
            event = {}
        invocation = Invocation(function_name.rsplit(":", 1)[-1], event if isinstance(event, dict) else {})
        invocation.request_bytes = len(body.encode() if isinstance(body, str) else body or b"")
        stack().append(invocation)
        started = time.perf_counter()
        try:
            response = invoke(backend, function_name, qualifier, body, *args, **kwargs)
            invocation.response_bytes = len(response.encode() if isinstance(response, str) else response or b"")
            if invocation.response_bytes > 64 * 1024:
                invocation.large_response_fields = _field_sizes(response)
            return response
        finally:
            invocation.seconds = time.perf_counter() - started
            stack().pop()
            meter.invocations.append(invocation)

    submit = ThreadPoolExecutor.submit

    def submit_in_same_invocation(pool, fn, /, *args, **kwargs):
        # A handler that reads in a thread pool makes its calls on worker threads: they are still its calls.
        inside = stack()[-1] if stack() else None
        if inside is None:
            return submit(pool, fn, *args, **kwargs)

        def in_invocation(*a, **kw):
            stack().append(inside)
            try:
                return fn(*a, **kw)
            finally:
                stack().pop()

        return submit(pool, in_invocation, *args, **kwargs)

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(BaseClient, "_make_api_call", counted_call))
        patches.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", timed_invoke))
        patches.enter_context(mock.patch.object(ThreadPoolExecutor, "submit", submit_in_same_invocation))
        yield meter
