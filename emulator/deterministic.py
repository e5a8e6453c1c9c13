"""Ids that do not depend on the order of threads: not AWS behaviour, but what makes two runs of the same fixture
print the same.

moto draws every id from one seeded generator (runner seeds it), so ids are reproducible only if the calls come in
the same order. A parallel Map's iterations create access keys on several threads, in an order that varies from
run to run: each key would take the other's id. Here each new access key draws its id and secret from a generator
of its own, derived from the seed, its user (as IAM spells the name) and how many keys IAM has issued that user so
far, so a key gets the same id whenever it is created. Ids keep moto's shape (and AWS's): AKIA, the account's
part, then random characters; the secret is 40 characters.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from unittest import mock


class _DrawsOfThisThread:
    """What moto.iam.utils draws from: while a thread creates an access key, that key's own generator; moto's
    shared one otherwise, and on every other thread."""

    def __init__(self, shared):
        self.shared = shared
        self._local = threading.local()

    def __getattr__(self, name):
        return getattr(getattr(self._local, "generator", None) or self.shared, name)

    @contextlib.contextmanager
    def of_this_thread(self, generator: random.Random):
        self._local.generator = generator
        try:
            yield
        finally:
            self._local.generator = None


@contextlib.contextmanager
def key_ids_of_their_own(seed: int):
    """While active, each access key IAM creates for a user draws its id and secret from
    random.Random("<seed>/<account>/<user>/<how many keys the user was issued before>")."""
    from moto.iam import utils
    from moto.iam.models import User

    create = User.create_access_key
    draws = _DrawsOfThisThread(utils.random)
    issued: Counter = Counter()  # keys created so far, deleted ones included, by (account, user name)
    ids: set[str] = set()  # every key id drawn: AWS never issues one twice
    lock = threading.Lock()

    def create_from_its_own_draws(user, prefix: str, status: str = "Active"):
        with lock:
            number = issued[user.account_id, user.name]
            issued[user.account_id, user.name] += 1
            with draws.of_this_thread(random.Random(f"{seed}/{user.account_id}/{user.name}/{number}")):
                key = create(user, prefix=prefix, status=status)
                while key.access_key_id in ids:  # another key's id (about one chance in 2**38): the next draw
                    key.access_key_id = utils.generate_access_key_id_from_account_id(user.account_id, prefix)
            ids.add(key.access_key_id)
        return key

    with mock.patch.object(utils, "random", draws), mock.patch.object(User, "create_access_key", create_from_its_own_draws):
        yield
