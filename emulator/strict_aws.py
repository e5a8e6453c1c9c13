"""Where moto is laxer than AWS in ways that would hide a defect of this workflow: made as strict as AWS.

One patch per AWS behaviour (faithful_moto's docstring lists them, one line each), and for each a test in
tests/test_strict_aws.py that fails on plain moto:
- time: every AWS call and every state transition takes time on the emulator's clock, so a run's states have
  distinct, millisecond times (``$$.State.EnteredTime`` as AWS writes it) while IAM dates stay whole seconds;
  IAM, Secrets Manager and Step Functions all read that one clock;
- IAM user names are unique whatever their letter case and found by any spelling; a renamed or moved user
  keeps its tags and keys;
- Secrets Manager refuses a secret name with characters outside ``/_+=.@-``, letters and digits;
- IAM refuses a 51st tag on a user;
- one AWS call at a time per account: IAM's two-keys-per-user limit holds under concurrent creates, and Secrets
  Manager's store survives a parallel Map (moto's backends are not thread-safe).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import types
from unittest import mock

# What each step costs on the emulator's clock. Odd numbers of milliseconds, so a run's times fall anywhere
# within a second, as they do on AWS.
API_CALL = dt.timedelta(milliseconds=43)
STATE_TRANSITION = dt.timedelta(milliseconds=17)

IAM_TAGS_PER_USER = 50
SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# Calls that run other calls on other threads (a Lambda handler's thread pool, a Map's iterations): never locked.
UNLOCKED_SERVICES = {"lambda", "stepfunctions"}


class CaseInsensitiveNames(dict):
    """IAM's users by name: one per name whatever its letter case, found by any spelling, kept in its own."""

    def __init__(self, items=()):
        super().__init__()
        self._spelling: dict[str, str] = {}  # folded name -> the name as stored
        for name, value in dict(items).items():
            self[name] = value

    def _stored(self, name):
        return self._spelling.get(name.lower(), name) if isinstance(name, str) else name

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._spelling

    def __getitem__(self, name):
        return super().__getitem__(self._stored(name))

    def get(self, name, default=None):
        return super().get(self._stored(name), default)

    def __setitem__(self, name, value):
        previous = self._spelling.get(name.lower())
        if previous is not None and previous != name:
            super().__delitem__(previous)
        self._spelling[name.lower()] = name
        super().__setitem__(name, value)

    def __delitem__(self, name):
        stored = self._stored(name)
        super().__delitem__(stored)
        del self._spelling[stored.lower()]

    def pop(self, name, *default):
        if name not in self:
            if default:
                return default[0]
            raise KeyError(name)
        value = self[name]
        del self[name]
        return value


class _AwsTime(dt.datetime):
    """A state's entered time as Step Functions writes it: milliseconds and a Z."""

    def isoformat(self, sep="T", timespec="auto"):
        return self.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@contextlib.contextmanager
def strict_aws(clock):
    """Apply the patches; ``clock`` is the emulator's faithful_moto.Clock."""
    from moto.core.responses import BaseResponse
    from moto.iam import models as iam_models
    from moto.iam.exceptions import EntityAlreadyExists, LimitExceededException
    from moto.secretsmanager import models as secrets_models
    from moto.secretsmanager.exceptions import ValidationException
    from moto.stepfunctions.parser import models as sfn_models
    from moto.stepfunctions.parser.asl.component.state import state as state_module
    from moto.stepfunctions.parser.asl.eval.event import event_manager

    one_call_at_a_time = threading.RLock()
    call_action = BaseResponse.call_action

    def timed_and_serialised(response):
        clock.advance(API_CALL)
        if response.boto3_service_name in UNLOCKED_SERVICES:
            return call_action(response)
        with one_call_at_a_time:
            return call_action(response)

    class StateClock:
        @staticmethod
        def now(tz=None):
            moment = clock.advance(STATE_TRANSITION)
            return _AwsTime.fromtimestamp(moment.timestamp(), tz or dt.timezone.utc)

    def whole_seconds():
        return clock.naive_utc().replace(microsecond=0)

    class ClockTime:
        @staticmethod
        def time():
            return clock.now.timestamp()

        def __getattr__(self, name):
            import time

            return getattr(time, name)

    iam_init = iam_models.IAMBackend.__init__

    def init_with_case_insensitive_users(backend, *args, **kwargs):
        iam_init(backend, *args, **kwargs)
        backend.users = CaseInsensitiveNames(backend.users)

    update_user = iam_models.IAMBackend.update_user

    def update_user_as_iam_does(backend, user_name, new_path=None, new_user_name=None):
        user = backend.get_user(user_name)  # NoSuchEntity, as IAM answers
        if new_user_name and new_user_name in backend.users and backend.users[new_user_name] is not user:
            raise EntityAlreadyExists(f"User with name {new_user_name} already exists.")
        old_arn = user.arn
        update_user(backend, user.name, new_path, new_user_name)
        if user.arn != old_arn:  # moto files tags under the ARN, which holds the path and the name
            backend.tagger.copy_tags(old_arn, user.arn)
            backend.tagger.delete_all_tags_for_resource(old_arn)
        for key in user.access_keys:
            key.user_name = user.name

    create_user = iam_models.IAMBackend.create_user

    def create_user_within_quota(backend, region_name, user_name, path="/", tags=None):
        if len(tags or []) > IAM_TAGS_PER_USER:
            raise LimitExceededException(f"A user can have at most {IAM_TAGS_PER_USER} tags.")
        return create_user(backend, region_name, user_name, path, tags)

    tag_user = iam_models.IAMBackend.tag_user

    def tag_user_within_quota(backend, name, tags):
        user = backend.get_user(name)
        present = {k.lower() for k in backend.tagger.get_tag_dict_for_resource(user.arn)}
        added = {t["Key"].lower() for t in tags} - present
        if len(present) + len(added) > IAM_TAGS_PER_USER:
            raise LimitExceededException(
                f"The number of tags has reached the maximum limit: user {user.name} has {len(present)} tags, and "
                f"a user can have at most {IAM_TAGS_PER_USER}."
            )
        return tag_user(backend, name, tags)

    create_secret = secrets_models.SecretsManagerBackend.create_secret

    def create_secret_with_a_valid_name(backend, name, *args, **kwargs):
        if not SECRET_NAME.fullmatch(name or ""):
            raise ValidationException(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
            )
        return create_secret(backend, name, *args, **kwargs)

    unmoved = types.SimpleNamespace(datetime=_ClockNow(clock), timezone=dt.timezone)
    from moto.iam.models import iam_backends

    for partitions in list(iam_backends.values()):  # backends made before the patches (the stack's roles)
        for backend in partitions.values():
            backend.users = CaseInsensitiveNames(backend.users)

    patches = [
        mock.patch.object(BaseResponse, "call_action", timed_and_serialised),
        mock.patch.object(state_module, "datetime", types.SimpleNamespace(datetime=StateClock, timezone=dt.timezone)),
        mock.patch.object(event_manager, "datetime", unmoved),
        mock.patch.object(sfn_models, "datetime", unmoved),
        mock.patch.object(iam_models, "utcnow", whole_seconds),
        mock.patch.object(secrets_models, "utcnow", clock.naive_utc),
        mock.patch.object(secrets_models, "time", ClockTime()),
        mock.patch.object(iam_models.IAMBackend, "__init__", init_with_case_insensitive_users),
        mock.patch.object(iam_models.IAMBackend, "update_user", update_user_as_iam_does),
        mock.patch.object(iam_models.IAMBackend, "create_user", create_user_within_quota),
        mock.patch.object(iam_models.IAMBackend, "tag_user", tag_user_within_quota),
        mock.patch.object(secrets_models.SecretsManagerBackend, "create_secret", create_secret_with_a_valid_name),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


class _ClockNow:
    """``datetime.datetime`` for a module that only asks for ``now``: the emulator's clock, unmoved."""

    def __init__(self, clock):
        self._clock = clock

    def now(self, tz=None):
        return self._clock.now.astimezone(tz or dt.timezone.utc)
