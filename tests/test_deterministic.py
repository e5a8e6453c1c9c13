"""Reproducible ids (emulator/deterministic.py): a parallel Map creates access keys on several threads, in an order
that varies from run to run, and each key must still get the same id and secret from the same seed."""

from __future__ import annotations

import re
import threading

from emulator.runner import Emulator
from emulator.stack import client

ACCOUNT = {"users": [{"name": "alpha"}, {"name": "beta"}]}


def keys_created(order: list[str], fixture: dict = ACCOUNT) -> list[tuple[str, str, str]]:
    """(user, key id, secret) of each key created for ``order``'s users in turn, on a fresh account."""
    with Emulator(fixture):
        created = [client("iam").create_access_key(UserName=user)["AccessKey"] for user in order]
    return [(key["UserName"], key["AccessKeyId"], key["SecretAccessKey"]) for key in created]


def test_a_key_gets_the_same_id_and_secret_whatever_order_the_users_keys_are_created_in():
    one_way = keys_created(["alpha", "beta", "alpha"])
    other_way = keys_created(["beta", "alpha", "alpha"])

    assert sorted(one_way) == sorted(other_way)
    assert [k for k in one_way if k[0] == "alpha"] == [k for k in other_way if k[0] == "alpha"]  # first, then second
    assert len({key_id for _, key_id, _ in one_way}) == 3 and len({secret for *_, secret in one_way}) == 3
    for _, key_id, secret in one_way:  # AWS's shape
        assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key_id) and len(secret) == 40


def test_a_key_never_takes_the_id_of_a_deleted_key_and_the_seed_changes_every_id():
    with Emulator(ACCOUNT):
        iam = client("iam")
        deleted = iam.create_access_key(UserName="alpha")["AccessKey"]["AccessKeyId"]
        iam.delete_access_key(UserName="alpha", AccessKeyId=deleted)
        again = iam.create_access_key(UserName="alpha")["AccessKey"]["AccessKeyId"]
    other_seed = keys_created(["alpha"], {**ACCOUNT, "seed": 1})[0][1]

    assert again != deleted  # AWS never issues a key id twice
    assert other_seed not in (deleted, again)


def test_keys_created_on_two_threads_at_once_get_the_ids_of_a_serial_run():
    """The path a parallel Map takes: each thread draws from its own key's generator while the other draws too."""
    serial = keys_created(["alpha", "beta"])
    with Emulator(ACCOUNT):
        iam, created, start = client("iam"), [], threading.Barrier(2)

        def create(user):
            start.wait()
            created.append(iam.create_access_key(UserName=user)["AccessKey"])

        threads = [threading.Thread(target=create, args=(user,)) for user in ("beta", "alpha")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted((k["UserName"], k["AccessKeyId"], k["SecretAccessKey"]) for k in created) == sorted(serial)


def test_a_drawn_id_already_issued_is_drawn_again(monkeypatch):
    """Two generators may draw the same id (about one chance in 2**38): the second key draws until it is new."""
    from moto.iam import models, utils

    first = keys_created(["alpha"])[0][1]
    draws = iter([first, first, "AKIAIOSFODNN7EXAMPLE"])  # alpha's id twice, then a new one
    for module in (models, utils):  # moto's first draw, and the emulator's draws again
        monkeypatch.setattr(module, "generate_access_key_id_from_account_id", lambda *args, **kwargs: next(draws))

    assert [key_id for _, key_id, _ in keys_created(["alpha", "beta"])] == [first, "AKIAIOSFODNN7EXAMPLE"]
