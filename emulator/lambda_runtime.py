"""The Lambda runtime of the emulated functions, in-process: a handler imported from its code directory and called
one at a time, with its function's environment seen by that invocation's thread (and the threads it starts) only,
and each emulated account starting with cold functions. faithful_moto's ``lambda:invoke`` patch calls it.

Every reader and writer of ``_ENVIRON`` (rebound by environment_of_each_invocation) is in this module."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from pathlib import Path


def call_handler(code_dir: Path, handler_path: str, environment: dict, event: dict, timeout: int):
    """Import the handler as the Lambda runtime does (its directory on sys.path) and call it."""
    module_name, function_name = handler_path.rsplit(".", 1)
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    handler = getattr(importlib.import_module(module_name), function_name)
    for prepare in AFTER_IMPORT:  # the emulator's hooks into the functions' modules (credential_report's wait)
        prepare()
    deadline = time.monotonic() + timeout

    class Context:
        function_name = "emulated"
        aws_request_id = "emulated-request"

        @staticmethod
        def get_remaining_time_in_millis():
            return int((deadline - time.monotonic()) * 1000)

    with _HANDLER_LOCK, _ENVIRON.of_this_thread(environment):
        return handler(event, Context())


def cold_functions() -> None:
    """Each emulated account starts with cold functions: a warm Lambda keeps what its modules cached (clients, the
    member role sessions reading.in_account assumed) only while its container lives, and a session from an
    earlier moto state would act in whichever account moto maps an unknown key to."""
    reading = sys.modules.get("reading")
    if reading is not None:
        reading.forget_sessions()


# Called after each handler's module is imported: patches to the functions' own modules, which the handler's first
# call imports.
AFTER_IMPORT: list = []


# One handler at a time: the functions share the process's modules (and their clients), and a parallel Map
# invokes Lambdas from several threads.
_HANDLER_LOCK = threading.Lock()


class _EnvironOfEachInvocation(dict):
    """``os.environ``'s store while the emulator runs: the process's variables, plus, on the thread of a Lambda
    invocation, that function's own. On AWS each invocation has its environment to itself; setting a function's
    variables in the shared os.environ instead showed them to every other thread for the time of the call, and
    removing them afterwards broke a concurrent reader's ``dict(os.environ)`` (KeyError), which the interpreter
    reported as a States.Runtime failure of an unrelated user."""

    def __init__(self, data: dict):
        super().__init__(data)
        self._invocation = threading.local()

    def _mine(self) -> dict:
        return getattr(self._invocation, "variables", None) or {}

    @contextlib.contextmanager
    def of_this_thread(self, variables: dict):
        """While active, this thread (only) sees ``variables`` on top of the process's environment."""
        encoded = {os.environ.encodekey(k): os.environ.encodevalue(v) for k, v in variables.items()}
        self._invocation.variables = encoded
        try:
            yield
        finally:
            self._invocation.variables = None

    def __getitem__(self, key):
        mine = self._mine()
        return mine[key] if key in mine else dict.__getitem__(self, key)

    def __contains__(self, key):
        return key in self._mine() or dict.__contains__(self, key)

    def __iter__(self):
        mine = self._mine()
        return iter(list(dict.keys(self)) + [k for k in mine if not dict.__contains__(self, k)])

    def __len__(self):
        mine = self._mine()
        return dict.__len__(self) + sum(1 for k in mine if not dict.__contains__(self, k))

    def get(self, key, default=None):
        return self[key] if key in self else default


_ENVIRON = _EnvironOfEachInvocation({})


@contextlib.contextmanager
def environment_of_each_invocation():
    """Install _EnvironOfEachInvocation as os.environ's store, and put the process's own back afterwards (with
    whatever was set meanwhile)."""
    global _ENVIRON
    original = os.environ._data
    _ENVIRON = _EnvironOfEachInvocation(original)
    os.environ._data = _ENVIRON
    start = threading.Thread.start

    def start_in_the_invocations_environment(thread):
        # On AWS a function's environment is its process's: a thread the handler starts (a ThreadPoolExecutor's
        # worker) sees it too, not only the thread the invocation came in on.
        variables = _ENVIRON._mine()
        if variables:
            run = thread.run

            def run_in_it():
                _ENVIRON._invocation.variables = variables
                try:
                    run()
                finally:
                    _ENVIRON._invocation.variables = None

            thread.run = run_in_it
        return start(thread)

    threading.Thread.start = start_in_the_invocations_environment
    try:
        yield
    finally:
        threading.Thread.start = start
        original.clear()
        original.update(dict.items(_ENVIRON))
        os.environ._data = original
