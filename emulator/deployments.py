"""A stack deployed once per parameters: the first deployment with the same parameters, seed and start time as an
earlier one in this process goes through the API, as CloudFormation would; the next ones restore a copy of the
backends it wrote to (not ~40 calls again: ~0.1 s of each of the suite's ~500 accounts). Not AWS behaviour, a
speed patch as speed.py's are: tests/test_speed.py compares a restored account with a fresh one. The cache holds
this process's template, ASL and code: an edit to them needs a new process, as tests have."""

from __future__ import annotations

import copy
import importlib

# The backends a deployment writes to (stack.deploy): what a snapshot holds.
_DEPLOYED_TO = (  # (module, its backends, the key of the account's backend: None for the region)
    ("moto.iam.models", "iam_backends", "global"),
    ("moto.s3.models", "s3_backends", "aws"),
    ("moto.sns.models", "sns_backends", None),
    ("moto.awslambda_simple.models", "lambda_simple_backends", None),  # Lambda without Docker, as the emulator runs it
    ("moto.stepfunctions.parser.models", "stepfunctions_parser_backends", None),
)
# Backends the deployed objects refer to without owning them (a Lambda function keeps its log backend).
_REFERENCED = (("moto.logs.models", "logs_backends", None),)
_deployments: dict[str, tuple] = {}


def deployed(key: str, deploy, account_id: str, region: str):
    """``deploy()``'s result, and the account as it left it. The first deployment with ``key`` (the parameters,
    the seed and the clock's start) goes through the API, as CloudFormation would; the next ones restore a copy
    of the backends it wrote to, and of moto's id generator after it, so what follows draws the same ids. (~0.1 s
    of ~40 calls, for each of the suite's ~500 accounts.) One emulated account at a time, as the Emulator is."""
    from moto.moto_api._internal import mock_random

    def backends(of):
        return [_backend(module, name, where, account_id, region) for module, name, where in of]

    if key in _deployments:
        deployment, saved, referenced, random_state = _deployments[key]
        # References to a backend (its own objects', a function's to its log backend) go to the live one.
        live_of = {id(old): live for old, live in zip(referenced, backends(_REFERENCED))}
        for live, (backend, state) in zip(backends(_DEPLOYED_TO), saved):
            live.__dict__ = copy.deepcopy(state, {**live_of, id(backend): live})
        _register_buckets(account_id)
        mock_random.setstate(random_state)
        return copy.deepcopy(deployment)
    deployment = deploy()
    referenced = backends(_REFERENCED)
    kept = {id(backend): backend for backend in referenced}
    saved = [(backend, copy.deepcopy(backend.__dict__, {**kept, id(backend): backend})) for backend in backends(_DEPLOYED_TO)]
    _deployments[key] = (copy.deepcopy(deployment), saved, referenced, mock_random.getstate())
    return deployment


def _backend(module: str, name: str, where: str | None, account_id: str, region: str):
    return getattr(importlib.import_module(module), name)[account_id][where or region]


def _register_buckets(account_id: str) -> None:
    """moto finds a bucket's account in a table beside its backends; a restored bucket goes back in it."""
    from moto.s3.models import s3_backends

    for name in s3_backends[account_id]["aws"].buckets:
        s3_backends.bucket_accounts[name] = ("aws", account_id)
