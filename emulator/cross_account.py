"""Several AWS accounts on one emulator: a Step Functions hub in 123456789012 acting in member accounts, and Lambda
functions acting as their roles. Active inside faithful_moto(..., strict=True) (``several_accounts``). The
organization itself (create_organization, create_member, client_in, suspend) is emulator/organization.py's, and
the trust policy evaluation (Caller, caller_of, refusal, trust_allows) emulator/trust.py's, both re-exported here.

Where moto differs from AWS, one line each (each with a test in tests/test_cross_account.py that fails on plain moto):
- a Task's ``Credentials`` (``RoleArn`` or ``RoleArn.$``) make its call with a session of that role, assumed as the
  state machine's execution role, so the call lands in the role's account; moto ignores them (default account);
- AssumeRole needs the role to exist and its trust policy to allow the caller, else AccessDenied ``User: <caller> is
  not authorized to perform: sts:AssumeRole on resource: <role>`` (the same for both); moto assumes any ARN;
- a Task whose Credentials cannot be assumed fails with States.TaskFailed and that message as its cause (Retry and
  Catch see it); the name is our choice: AWS's docs and moto's and LocalStack's source name none;
- a Lambda handler runs as its function's role: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN of a
  session named after the function (GetCallerIdentity: assumed-role/<role>/<function>); moto's handlers would use
  the process's keys, which GetCallerIdentity refuses;
- ListAccounts in an account that is in no organization fails with AWSOrganizationsNotInUseException; moto lists
  no account;
- a service-managed StackSet never deploys to the organization's management account; moto deploys there too when
  it is below the OUs or root named (moto also goes one OU level down only, and ignores AccountFilterType);
- boto3's default session in a handler takes that invocation's keys: on AWS each function has its own process, here
  they share one, whose default session would keep the first keys it read.
Trust policies as evaluated: Allow and Deny statements whose Action (or NotAction) covers sts:AssumeRole; Principal
"*" or AWS: "*", an account id or its root ARN (any principal of the account), a role ARN (a session of that role,
by account and name), a user ARN, an assumed-role session ARN; conditions StringEquals, StringLike, ArnEquals and
ArnLike on aws:PrincipalArn and aws:PrincipalAccount. A Deny that matches wins. The caller is the request's access
key's: a role session, an IAM user, or else (the emulator's own keys, moto's default identity) 123456789012's root.
Not faithful (known):
- a statement with another condition, operator or key, or with NotPrincipal, cannot be evaluated: it never allows,
  and as a Deny it always applies;
- the caller's own identity policies, SCPs and permission boundaries are not evaluated (AWS requires, across
  accounts, that the caller's policies allow sts:AssumeRole too), nor ExternalId, session policies or durations;
- Service principals are not checked: Lambda and Step Functions assume their roles whatever those trust;
- a trust policy's principals are not checked when it is written (AWS refuses a role ARN that does not exist);
- a suspended account's roles can still be assumed; CloseAccount suspends at once (AWS: PENDING_CLOSURE first);
- session names are the emulator's: ``StepFunctions`` for Step Functions' sessions, the function's name for Lambda's;
- a Task's role is assumed once per moto state (its trust checked again at every call), taking no time on the clock;
  a Task without Credentials still calls with the emulator's keys (the default account), not the execution role's.
Reproducible ids (not AWS behaviour): a session's key id, secret and token come from a generator of their own (seed,
role, session name, sessions of that name so far), and a member account's id from its name, like access keys
(deterministic); so clients made for a session are reused across accounts set up one after another.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass
from unittest import mock

import boto3

# The emulator's own organization of accounts: its callers import it from here.
from .organization import MANAGEMENT_ACCOUNT, ORGANIZATION_ROLE, REGION, Organization  # noqa: F401
from .organization import client_in, create_member, create_organization, suspend  # noqa: F401
from .trust import Caller, caller_of, not_authorized, refusal, trust_allows  # noqa: F401  (trust.py: who may assume a role)

SERVICE_SESSION = "StepFunctions"  # the session name of Step Functions' sessions of a role
TASK_FAILED = "States.TaskFailed"



class TaskCredentialsRefused(Exception):
    """The role of a Task's Credentials could not be assumed: the Task fails with States.TaskFailed."""


@dataclass
class TaskRole:
    """A Task's Credentials as the emulator evaluates them (moto's StateCredentials, plus the execution role that
    assumes the Task's role)."""

    role_arn: str
    execution_role_arn: str


# Clients and boto3 sessions by the credentials they sign with: a session's keys are the same whenever it is
# issued again with the same seed, so they serve every account set up one after another in this process.
_CLIENTS: dict[tuple, object] = {}
_BOTO3_SESSIONS: dict[tuple, boto3.Session] = {}
_CACHE_LOCK = threading.Lock()


def _client(service: str, region: str, credentials: dict, config=None):
    key = (service, region, credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SESSION_TOKEN"], id(config))
    with _CACHE_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = boto3.client(
                service,
                region_name=region,
                aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=credentials["AWS_SESSION_TOKEN"],
                config=config,
            )
        return _CLIENTS[key]


def _environment(session) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
    }


class Accounts:
    """The sessions issued while faithful_moto runs (one moto state): Step Functions', each Lambda function's, and
    the emulator's own into member accounts."""

    def __init__(self, seed: int):
        self.seed = seed
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str], object] = {}  # (role ARN, session name) -> moto's AssumedRole
        self._issued: Counter = Counter()
        self._invocation_keys: set[str] = set()  # key ids handed to Lambda invocations
        self._draws = threading.local()

    # Sessions, drawn from generators of their own.

    @contextlib.contextmanager
    def own_draws(self, role_arn: str, session_name: str):
        """While active, the session AssumeRole issues on this thread draws its key, secret and token from
        random.Random("<seed>/<role ARN>/<session name>/<sessions of that name issued so far>")."""
        from moto.iam import utils

        with self._lock:
            number = self._issued[role_arn, session_name]
            self._issued[role_arn, session_name] += 1
        generator = random.Random(f"{self.seed}/{role_arn}/{session_name}/{number}")
        draws = getattr(utils.random, "of_this_thread", None)  # deterministic.key_ids_of_their_own's
        self._draws.generator = generator
        try:
            with draws(generator) if draws else contextlib.nullcontext():
                yield generator
        finally:
            self._draws.generator = None

    def session_token(self, original):
        generator = getattr(self._draws, "generator", None)
        return original() if generator is None else _token(generator)

    def session(self, role_arn: str, session_name: str):
        """A session of ``role_arn`` as a service assumes it (no trust check), kept while moto knows its key."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        with self._lock:
            session = self._sessions.get((role_arn, session_name))
            if session is None or session.access_key_id not in iam_backends[session.account_id]["global"].access_keys:
                with self.own_draws(role_arn, session_name) as generator:  # moto files it in the role's account
                    session = sts_backends[MANAGEMENT_ACCOUNT]["aws"].assume_role(
                        region_name=REGION, role_session_name=session_name, role_arn=role_arn, policy=None,
                        duration=3600, external_id=None,
                    )
                    session.session_token = _token(generator)  # also outside several_accounts (client_in)
                self._sessions[role_arn, session_name] = session
            return session

    # Step Functions

    def task_client(self, region: str, service: str, credentials: TaskRole, config=None):
        """The client a Task with Credentials calls with: a session of its role, assumed by a session of the
        execution role. The trust is checked at every call, as the role may have changed since."""
        caller = Caller.of_session(self.session(credentials.execution_role_arn, SERVICE_SESSION))
        denied = refusal(caller, credentials.role_arn)
        if denied:
            raise TaskCredentialsRefused(denied)
        session = self.session(credentials.role_arn, SERVICE_SESSION)
        return _client(service, region, _environment(session), config)

    # Lambda

    def environment_of(self, function) -> dict[str, str]:
        """The keys a Lambda invocation runs with: a session of the function's role named after the function."""
        session = self.session(function.role, function.function_name)
        environment = _environment(session)
        with self._lock:
            self._invocation_keys.add(session.access_key_id)
        return environment

    def default_session(self, original):
        """boto3's default session for this thread: the invocation's keys' own on a Lambda invocation's thread."""
        key_id = os.environ.get("AWS_ACCESS_KEY_ID")
        if key_id not in self._invocation_keys:
            return original()
        secret, token = os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN")
        with _CACHE_LOCK:
            if (key_id, token) not in _BOTO3_SESSIONS:
                _BOTO3_SESSIONS[key_id, token] = boto3.Session(
                    aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token
                )
            return _BOTO3_SESSIONS[key_id, token]

    # The emulator's own clients into member accounts

    def client_in(self, account_id: str, service: str, region: str = REGION, role_name: str = ORGANIZATION_ROLE):
        role_arn = f"arn:aws:iam::{account_id}:role/{role_name}"
        denied = refusal(Caller.root(MANAGEMENT_ACCOUNT), role_arn)
        if denied:
            raise PermissionError(denied)
        return _client(service, region, _environment(self.session(role_arn, "emulator")))


def _token(generator: random.Random) -> str:
    """A session token in moto's shape, from ``generator``."""
    from moto.sts.utils import SESSION_TOKEN_PREFIX

    return SESSION_TOKEN_PREFIX + base64.b64encode(generator.randbytes(266))[len(SESSION_TOKEN_PREFIX):].decode()


_ACTIVE: Accounts | None = None


@contextlib.contextmanager
def several_accounts(seed: int = 0):
    """Apply the patches (faithful_moto does, when strict); yields the Accounts of this moto state."""
    global _ACTIVE
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task, state_task_lambda
    from moto.sts import models as sts_models
    from moto.sts.responses import TokenResponse

    accounts = Accounts(seed)
    assume_role = TokenResponse.assume_role

    def assume_role_if_trusted(response):
        from moto.core.exceptions import AccessDeniedError

        role_arn, caller = response._get_param("RoleArn"), caller_of(response.get_access_key())
        if refusal(caller, role_arn):
            raise AccessDeniedError(user_arn=caller.arn, action=f"sts:AssumeRole on resource: {role_arn}")  # 403
        with accounts.own_draws(role_arn, response._get_param("RoleSessionName") or ""):
            return assume_role(response)

    eval_credentials = state_task.StateTask._eval_state_credentials

    def credentials_with_their_assumer(task, env):
        credentials = eval_credentials(task, env)
        if task.credentials:  # moto's StateCredentials carry the role only
            return TaskRole(credentials.role_arn, env.aws_execution_details.role_arn)
        return credentials

    from moto.organizations.exceptions import AWSOrganizationsNotInUseException
    from moto.organizations.models import OrganizationsBackend

    list_accounts = OrganizationsBackend.list_accounts

    def list_accounts_of_an_organization(backend, *args, **kwargs):
        if backend.org is None:
            raise AWSOrganizationsNotInUseException()
        return list_accounts(backend, *args, **kwargs)

    from moto.cloudformation.models import StackInstances

    create_instances = StackInstances.create_instances

    def create_instances_but_not_in_the_management_account(instances, accounts, regions, parameters, targets, permission_model):
        org = instances.org_backend
        if permission_model != "SERVICE_MANAGED" or org.org is None:
            return create_instances(instances, accounts, regions, parameters, targets, permission_model)
        members = [a for a in org.accounts if a.id != org.org.master_account_id]
        with mock.patch.object(org, "accounts", members):
            return create_instances(instances, accounts, regions, parameters, targets, permission_model)

    random_session_token = sts_models.random_session_token
    default_session = boto3._get_default_session
    patches = [
        mock.patch.object(OrganizationsBackend, "list_accounts", list_accounts_of_an_organization),
        mock.patch.object(StackInstances, "create_instances", create_instances_but_not_in_the_management_account),
        mock.patch.object(TokenResponse, "assume_role", assume_role_if_trusted),
        mock.patch.object(sts_models, "random_session_token", lambda: accounts.session_token(random_session_token)),
        mock.patch.object(state_task.StateTask, "_eval_state_credentials", credentials_with_their_assumer),
        *(
            mock.patch.object(state, "_from_error", _failing_the_task(state._from_error))
            for state in (execute_state.ExecutionState, state_task_lambda.StateTaskLambda)  # the latter answers first
        ),
        mock.patch.object(boto3, "_get_default_session", lambda: accounts.default_session(default_session)),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        stack.callback(globals().__setitem__, "_ACTIVE", _ACTIVE)
        _ACTIVE = accounts
        yield accounts


def _failing_the_task(moto_from_error):
    """A state's _from_error that turns refused Task credentials into States.TaskFailed with AWS's message."""

    def from_error(state, env, ex):
        if not isinstance(ex, TaskCredentialsRefused):
            return moto_from_error(state, env, ex)
        from moto.stepfunctions.parser.api import (
            HistoryEventType,
            LambdaFunctionFailedEventDetails,
            TaskFailedEventDetails,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        error_name = StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed)
        if hasattr(state, "_get_sfn_resource_type"):  # a service integration (aws-sdk, lambda:invoke)
            details = TaskFailedEventDetails(
                resource=state._get_sfn_resource(), resourceType=state._get_sfn_resource_type(), error=TASK_FAILED,
                cause=str(ex),
            )
            event = HistoryEventType.TaskFailed, EventDetails(taskFailedEventDetails=details)
        else:  # a Lambda function as the Resource
            details = LambdaFunctionFailedEventDetails(error=TASK_FAILED, cause=str(ex))
            event = HistoryEventType.LambdaFunctionFailed, EventDetails(lambdaFunctionFailedEventDetails=details)
        return FailureEvent(env, error_name, *event)

    return from_error
