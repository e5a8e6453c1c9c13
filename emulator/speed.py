"""Patches that make the emulator fast. None changes what a call does or answers: each removes work that only a
real network needs, or that moto and botocore repeat with the same result. (faithful_moto also runs executions
synchronously and records Retry backoff instead of sleeping; the emulator would otherwise take minutes.)

Each AWS call
- a request carries a placeholder SigV4 Authorization header with its real access key id (moto checks no
  signature; it reads the key id, for the account and for GetCallerIdentity), not a computed signature (~1.4 ms);
  an S3 request says its payload is unsigned, or streamed with a trailing checksum (what moto reads to decode it);
- the User-Agent header is built once per request, not again with the request's feature ids (no one reads it;
  ~0.4 ms);
- moto lists a response class's methods once per class, not with ``inspect.getmembers`` for every call (~1 ms);
- botocore's service models are loaded once, not for every new session's clients;
- moto finds the handler of a request in its service's URL table, built once per backend class (and the settings
  it reads), not again for every request (for S3, after reloading moto.s3.urls each time: ~15% of a PutObject).
Each new session and client (a Lambda's clients, and a session for each role it assumes: ~16 clients a run, a
third of a small run's time)
- a client asked for again in a later emulated account, of the same session with the same arguments and
  environment, is the one made in an earlier account, its retry quota full again (_clients_made_once says what
  else a client keeps between calls, and why none of it matters here); within one account every request still
  gets a client of its own (botocore builds a class, ~180 methods, an endpoint and ~600 handlers for each: ~5 ms);
- an event name's alias is looked up in one table shared by every session with the same aliases, not worked out
  again by each new session and client (each registers ~150 handlers);
- whether a handler takes **kwargs is read from its signature once per function, not at every registration.
The state machine
- a state's input, output and stack are deep-copied by a copier of JSON values (dicts, lists, strings, numbers,
  booleans, null, and the dates of SDK answers) where moto calls copy.deepcopy, anything else by copy.deepcopy
  (~9% of a small run: deepcopy keeps a memo and looks up a copier for every value);
- the ASL is parsed once per definition, not per execution (~0.7 s for this one; a parsed program keeps no
  execution state), and for the tests once per definition until moto or the emulator changes (the program kept
  on disk: keep_parsed_programs_in); each JSONPath once, not at every evaluation (jsonpath_ng builds a parser
  each time, ~5 ms).
Each account
- a stack deployed with the same parameters, seed and start time as an earlier one in this process is a copy of
  the backends that deployment wrote to, not ~40 calls again (deployments.py).
Lookups at 100,000 users
- a secret named by its name is looked up in moto's dict by that name, without moto's scan of every secret's
  ARN and name (each lookup scanned them all); GetAccessKeyLastUsed finds the key in moto's dict of keys,
  without listing every user's keys.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import importlib
import os
import threading
import time
from pathlib import Path
from unittest import mock


@contextlib.contextmanager
def faster_emulation():
    from botocore.useragent import UserAgentString
    from moto.core import responses
    from moto.iam.models import IAMBackend

    method_names = functools.cache(responses.method_names_from_class)
    patches = [
        *_placeholder_signatures(),
        mock.patch.object(UserAgentString, "rebuild_and_replace_user_agent_handler", lambda *args, **kwargs: None),
        mock.patch.object(responses, "method_names_from_class", method_names),
        *_parsed_once(),
        *_json_copied(),
        *_secrets_found_by_name(),
        *_sessions_set_up_once(),
        *_clients_made_once(),
        *_url_tables_built_once(),
        mock.patch.object(IAMBackend, "get_access_key_last_used", _last_use_by_key_id),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def _placeholder_signatures() -> list:
    """SigV4's signers, botocore's own and the CRT's (whichever botocore picks), writing the placeholder."""
    from botocore.auth import STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD, S3SigV4Auth, SigV4Auth
    from botocore.exceptions import NoCredentialsError

    signers, s3_signers = [SigV4Auth, S3SigV4Auth], {S3SigV4Auth}
    try:
        from botocore.crt.auth import CrtS3SigV4Auth, CrtSigV4Auth  # needs awscrt
    except ImportError:
        pass
    else:
        signers += [CrtSigV4Auth, CrtS3SigV4Auth]
        s3_signers.add(CrtS3SigV4Auth)
    signed = {signer: signer.add_auth for signer in signers}

    def placeholder_signature(signer, request):
        if type(signer) not in signed:  # a subclass (presigned URLs, query strings): as botocore has it
            return signed[next(c for c in type(signer).__mro__ if c in signed)](signer, request)
        credentials = signer.credentials
        if credentials is None:
            raise NoCredentialsError()
        now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for header in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):  # a retry's
            if header in request.headers:
                del request.headers[header]
        request.headers["X-Amz-Date"] = now
        if type(signer) in s3_signers:  # what moto reads to decode the body
            streamed = signer._is_streaming_checksum_payload(request)
            request.headers["X-Amz-Content-SHA256"] = STREAMING_UNSIGNED_PAYLOAD_TRAILER if streamed else UNSIGNED_PAYLOAD
        if credentials.token:
            request.headers["X-Amz-Security-Token"] = credentials.token
        scope = f"{credentials.access_key}/{now[:8]}/{signer._region_name}/{signer._service_name}/aws4_request"
        request.headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, Signature={'0' * 64}"

    return [mock.patch.object(signer, "add_auth", placeholder_signature) for signer in signers]


def _parsed_once() -> list:
    import botocore.loaders
    import botocore.session
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.utils import json_path
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    _ORIGINALS.setdefault("parse", AmazonStateLanguageParser.__dict__["parse"].__func__)
    _ORIGINALS.setdefault("validate", StepFunctionsParserBackend.__dict__["_validate_definition"].__func__)
    _ORIGINALS.setdefault("create_loader", botocore.loaders.create_loader)
    _ORIGINALS.setdefault("json_path_parse", json_path.parse)
    _ORIGINALS.setdefault("result_path_parse", result_path.parse)
    return [
        mock.patch.object(json_path, "parse", _json_path_once),
        mock.patch.object(result_path, "parse", _result_path_once),
        mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(_parse_once)),
        mock.patch.object(ExecutionWorker, "_get_evaluation_entrypoint", _program_to_run),
        mock.patch.object(StepFunctionsParserBackend, "_validate_definition", staticmethod(_validated)),
        mock.patch.object(botocore.session, "create_loader", _loader_once),
    ]


# The interpreter's modules that deep-copy states' JSON values (and, in environment.py, program states: copied as
# before). Each imports copy and calls copy.deepcopy.
_COPYING_MODULES = (
    "asl.eval.states",
    "asl.eval.environment",
    "asl.eval.event.event_manager",
    "asl.component.common.string.string_expression",
    "asl.component.common.path.result_path",
    "asl.component.state.exec.execute_state",
    "asl.component.state.exec.state_map.state_map",
    "asl.component.state.exec.state_task.service.state_task_service",
)


def _json_copied() -> list:
    import types

    copier = types.SimpleNamespace(deepcopy=_deep_copy, copy=copy.copy)
    modules = [importlib.import_module(f"moto.stepfunctions.parser.{name}") for name in _COPYING_MODULES]
    return [mock.patch.object(module, "copy", copier) for module in modules]


def _deep_copy(value, memo=None):
    return copy.deepcopy(value, memo) if memo is not None else _copy_json(value)


def _copy_json(value):
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in _UNCHANGEABLE:
        return value
    return copy.deepcopy(value)


_UNCHANGEABLE = frozenset((str, int, float, bool, type(None), datetime.datetime))


def _sessions_set_up_once() -> list:
    """botocore's EventAliaser keeps the aliased name of each event name in a cache of its own, which each new
    session and each client's copy starts empty; the answer depends only on the alias table, so aliasers with the
    same table share one cache. botocore checks each handler it registers for **kwargs with
    inspect.getfullargspec; a function's signature does not change, so the answer is kept per function (weakly:
    a handler that goes is forgotten), a bound method's being its function's."""
    import weakref

    import botocore.hooks
    from botocore.hooks import EventAliaser

    init, accepts_kwargs = EventAliaser.__init__, botocore.hooks.accepts_kwargs
    caches = _ORIGINALS.setdefault("alias caches", {})  # alias table -> {event name: aliased name}, for the process
    checked = _ORIGINALS.setdefault("accepts kwargs", weakref.WeakKeyDictionary())

    def init_sharing_the_cache(aliaser, event_emitter, event_aliases=None):
        init(aliaser, event_emitter, event_aliases)
        aliaser._alias_name_cache = caches.setdefault(frozenset(aliaser._event_aliases.items()), {})

    def accepts_kwargs_once(func):
        target = getattr(func, "__func__", func)
        try:
            return checked[target]
        except (KeyError, TypeError):  # not seen yet, or not weakly referable
            pass
        answer = accepts_kwargs(func)
        with contextlib.suppress(TypeError):
            checked[target] = answer
        return answer

    return [
        mock.patch.object(EventAliaser, "__init__", init_sharing_the_cache),
        mock.patch.object(botocore.hooks, "accepts_kwargs", accepts_kwargs_once),
    ]


def _clients_made_once() -> list:
    """Session.create_client, giving each emulated account (each faster_emulation, one at a time) the clients
    earlier accounts asked for with the same session, arguments and AWS_* environment, each to one caller per
    account, their retry quotas refilled. The state a botocore client keeps between calls, besides that quota: S3's
    cache of buckets' regions (moto never redirects), adaptive mode's rate limiter (no client here uses adaptive
    mode) and handlers registered on the client (nothing here registers any). A client made with keys of its own
    (the key check's, with a key it checks) is not kept: those keys are used once."""
    import weakref

    import botocore.session
    from botocore.retries import quota, standard

    create, register_retry_handler = botocore.session.Session.create_client, standard.register_retry_handler
    # session -> (service, arguments, AWS_* environment) -> [[client, the account it was last given to]]
    made = _ORIGINALS.setdefault("clients", weakref.WeakKeyDictionary())
    quotas = _ORIGINALS.setdefault("retry quotas", weakref.WeakKeyDictionary())  # client -> its RetryQuotaChecker
    account = _ORIGINALS["accounts"] = _ORIGINALS.get("accounts", 0) + 1
    lock = _ORIGINALS.setdefault("clients lock", threading.Lock())

    def create_client(session, service_name, *args, **kwargs):
        if args or kwargs.get("aws_access_key_id"):  # boto3 passes keywords; keys of its own: used once
            return create(session, service_name, *args, **kwargs)
        config = kwargs.get("config")
        arguments = sorted((k, v if k != "config" else sorted(config._user_provided_options.items()))
                           for k, v in kwargs.items() if v is not None)
        environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
        key = repr((service_name, arguments, environment))
        with lock:
            for entry in made.setdefault(session, {}).get(key, ()):
                if entry[1] != account:  # given to no one in this account yet
                    entry[1] = account
                    client = entry[0]
                    if client in quotas:
                        quotas[client]._quota, quotas[client]._last_amount_acquired = quota.RetryQuota(), None
                    return client
        client = create(session, service_name, *args, **kwargs)
        with lock:
            made[session].setdefault(key, []).append([client, account])
        return client

    def recording_the_quota(client, *args, **kwargs):
        handler = register_retry_handler(client, *args, **kwargs)
        quotas[client] = handler._retry_quota
        return handler

    return [
        mock.patch.object(botocore.session.Session, "create_client", create_client),
        mock.patch.object(standard, "register_retry_handler", recording_the_quota),
    ]


def _url_tables_built_once() -> list:
    """BaseBackend.urls builds a backend's table of URL patterns from its urls module at every request (S3's model
    reloads that module first, in case MOTO_S3_CUSTOM_ENDPOINTS changed). The table depends only on the backend's
    class and the settings its urls module and the table read: kept per class and those settings."""
    from moto.core.base_backend import BaseBackend

    urls = BaseBackend.__dict__["urls"].fget
    tables = _ORIGINALS.setdefault("url tables", {})

    def urls_built_once(backend):
        settings = (type(backend), os.environ.get("MOTO_S3_CUSTOM_ENDPOINTS"), os.environ.get("MOTO_ENABLE_ISO_REGIONS"))
        table = tables.get(settings)
        if table is None:
            table = tables[settings] = urls(backend)
        return dict(table)

    return [mock.patch.object(BaseBackend, "urls", property(urls_built_once))]


def _secrets_found_by_name() -> list:
    """moto's SecretsStore is a dict keyed by name whose lookups compare the id with every secret's ARN and name,
    found or not; for an id that is not an ARN the dict's own lookup gives the same answer at once."""
    from moto.secretsmanager.models import SecretsStore

    scan_contains, scan_getitem, scan_get = SecretsStore.__contains__, SecretsStore.__getitem__, SecretsStore.get

    def contains(store, key):
        return scan_contains(store, key) if key.startswith("arn:") else dict.__contains__(store, key)

    def getitem(store, key):
        return scan_getitem(store, key) if key.startswith("arn:") else dict.__getitem__(store, key)

    def get(store, key):
        return scan_get(store, key) if key.startswith("arn:") else dict.get(store, key)

    return [
        mock.patch.object(SecretsStore, "__contains__", contains),
        mock.patch.object(SecretsStore, "__getitem__", getitem),
        mock.patch.object(SecretsStore, "get", get),
    ]


def _last_use_by_key_id(backend, access_key_id: str) -> dict:
    from moto.iam.exceptions import NotFoundException

    key = backend.access_keys.get(access_key_id)
    if key is None:
        raise NotFoundException(f"The Access Key with id {access_key_id} cannot be found")
    return {"user_name": key.user_name, "last_used": key.last_used}


# What the patches wrap, as it was before them (moto's parser and definition check, botocore's loader factory...),
# and what they keep for the process (alias caches, url tables, the clients made and their retry quotas).
_ORIGINALS: dict = {}


_PARSED_PROGRAMS: Path | None = None  # where parsed programs are kept between processes (keep_parsed_programs_in)


def keep_parsed_programs_in(directory: Path | None) -> None:
    """Keep each definition's parsed program in ``directory`` too, for the next process (the test suite's workers
    and its next run parse the ASL ~25 times otherwise, ~0.7 s each). Pickles of the program, named by a SHA-256 of
    the definition, Python's version, moto's interpreter code and the emulator's (its patches of the parser): only
    the tests write and read them. Used where no parse tree is needed (an execution's program, and the check at
    CreateStateMachine of a definition kept because it parsed before); parse() itself still parses. None stops."""
    global _PARSED_PROGRAMS
    _PARSED_PROGRAMS = directory
    _program_of.cache_clear()


@functools.lru_cache(maxsize=8)
def _parse_once(definition: str):
    parsed = _ORIGINALS["parse"](definition)
    kept = _kept_program(definition)
    if kept is not None and not kept.exists():
        import pickle

        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_suffix(f".{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(pickle.dumps(parsed[0]))
        os.replace(partial, kept)  # whole or absent: another worker may write the same one
    return parsed


@functools.lru_cache(maxsize=8)
def _program_of(definition: str):
    """The program of a definition: kept from an earlier process, or parsed (and kept)."""
    kept = _kept_program(definition)
    if kept is not None and kept.exists():
        import pickle

        try:
            return pickle.loads(kept.read_bytes())
        except Exception:  # unreadable (a class moved, a torn file): parsed again below, and kept anew
            kept.unlink(missing_ok=True)
    return _parse_once(definition)[0]


def _kept_program(definition: str) -> Path | None:
    if _PARSED_PROGRAMS is None:
        return None
    import hashlib
    import sys

    key = hashlib.sha256(f"{sys.version}\0{_interpreter_code()}\0{definition}".encode()).hexdigest()
    return _PARSED_PROGRAMS / f"{key}.pickle"


def _program_to_run(worker):
    return _program_of(worker._evaluation_details.state_machine_details.definition)


def _validated(definition: str) -> None:
    """moto's check at CreateStateMachine, but not again for a definition kept: it parsed with this very code."""
    kept = _kept_program(definition)
    if kept is None or not kept.exists():
        _ORIGINALS["validate"](definition)


@functools.lru_cache(maxsize=1)
def _interpreter_code() -> str:
    """A SHA-256 of the code a parse runs: moto's interpreter (each file's path, size and time: an edited or
    reinstalled moto changes it, whatever its version says) and the emulator's (its patches of the parser)."""
    import hashlib

    import moto.stepfunctions.parser

    digest = hashlib.sha256()
    for path in sorted(Path(moto.stepfunctions.parser.__file__).parent.rglob("*.py")):
        status = path.stat()
        digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1024)
def _json_path_once(path: str):
    return _ORIGINALS["json_path_parse"](path)


@functools.lru_cache(maxsize=1024)
def _result_path_once(path: str):
    return _ORIGINALS["result_path_parse"](path)


@functools.lru_cache(maxsize=4)
def _loader_once(search_path_string=None):
    return _ORIGINALS["create_loader"](search_path_string)
