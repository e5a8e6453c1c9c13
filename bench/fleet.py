"""The benchmark's accounts: fleets of managed users with realistic key ages, seeded straight into moto.

A steady fleet (``make_fleet``) is an account the workflow has managed for a while: current key ages spread
uniformly over 0..120 days, so at MaxKeyAgeDays 90 a quarter is due; 90% hold their key in their secret; users
rotated less than install + recovery window days ago still have the previous key, Active inside the install
window and Inactive (tagged with when) inside the recovery window; 1% have a second Active key made outside the
workflow (blocked). The first two users are always one due for deactivation and one due for deletion, so every
kind of action is measured even in a small fleet.

A first install (``make_first_install``) is an account the workflow has never seen: every user has one key,
older than MaxKeyAgeDays, and no secret.

The same size and seed give the same fleet.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from emulator import account, stack

import decisions  # noqa: E402  (on sys.path through the emulator package, as in the Lambda runtime)


@dataclass(frozen=True)
class UserSpec:
    name: str
    age: timedelta  # the current key's age
    in_secret: bool  # the secret holds the current key (the workflow stored it)
    previous: str | None = None  # "Active" or "Inactive": the key the last rotation replaced, inside its windows
    inactive_for: timedelta | None = None  # how long the previous key has been Inactive (its inactive-since tag)
    extra_active: bool = False  # a newer Active key made outside the workflow: blocked

    def expected(self, policy: decisions.Policy) -> str:
        """What a run at seeding time does, by docs/how-it-decides.md's rules: rotate, retire, blocked or unchanged."""
        if self.extra_active:
            return "blocked"
        if self.age >= policy.rotation_age:
            return "rotate"
        if self.previous == "Active" and self.age >= policy.install_window:
            return "retire"
        if self.previous == "Inactive" and self.inactive_for >= policy.recovery_window:
            if self.age >= policy.install_window + policy.recovery_window:
                return "retire"
        return "unchanged"


def make_fleet(size: int, policy: decisions.Policy, seed: int = 1) -> list[UserSpec]:
    """``size`` managed users of an account the workflow already manages (see the module docstring)."""
    rng = random.Random(f"{seed}:{size}")
    install, recovery = policy.install_window, policy.recovery_window
    day = timedelta(days=1)
    specs = []
    for i in range(size):
        if i == 0:  # rotated just over an install window ago: its previous key is due for deactivation
            age, in_secret = install + day / 2, True
        elif i == 1:  # its previous key has been Inactive for a whole recovery window: due for deletion
            age, in_secret = install + recovery + day / 2, True
        else:
            age, in_secret = timedelta(days=rng.uniform(0, 120)), rng.random() < 0.9
        age = timedelta(seconds=round(age.total_seconds()))
        previous = inactive_for = None
        if in_secret and age < install + recovery + day:  # rotated by the workflow within its windows
            if age < install + day:
                previous = "Active"  # deactivated by the first run at or after the install window
            else:
                previous, inactive_for = "Inactive", age - install
        extra = i > 1 and previous is None and in_secret and rng.random() < 0.01
        specs.append(UserSpec(f"svc-{i:06d}", age, in_secret, previous, inactive_for, extra))
    return specs


def make_first_install(size: int, policy: decisions.Policy, seed: int = 1) -> list[UserSpec]:
    """``size`` users the workflow has never seen, every one with a single key due for rotation."""
    rng = random.Random(f"first:{seed}:{size}")
    return [
        UserSpec(f"svc-{i:06d}", policy.rotation_age + timedelta(seconds=rng.randrange(0, 365 * 86_400)), in_secret=False)
        for i in range(size)
    ]


def expected_outcomes(specs: list[UserSpec], policy: decisions.Policy) -> Counter:
    return Counter(spec.expected(policy) for spec in specs)


def seed_fleet(specs: list[UserSpec], now: datetime, parameters: dict[str, str], policy: decisions.Policy) -> None:
    """Create the users, keys, tags and secrets straight in moto's backends (the API would take minutes at
    100,000 users). The result is what account.seed makes from a fixture: keys backdated, each stored key a
    secret version named for it and the user's key-rotation:secret tag, an Inactive key's inactive-since tag."""
    from moto.iam.models import iam_backends
    from moto.secretsmanager.models import secretsmanager_backends

    iam = iam_backends[stack.ACCOUNT_ID]["global"]
    sm = secretsmanager_backends[stack.ACCOUNT_ID][stack.REGION]
    tag_key, tag_value = parameters["UserTagKey"], parameters["UserTagValue"]
    tags = [{"Key": tag_key, "Value": tag_value}] if tag_key else []

    def created(age: timedelta) -> datetime:
        return (now - age).astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)

    for spec in specs:
        iam.create_user(stack.REGION, spec.name, parameters["UserPath"], [dict(t) for t in tags])
        stored = []
        if spec.previous:
            previous = iam.create_access_key(spec.name)
            previous.create_date = created(spec.age + policy.rotation_age)
            if spec.previous == "Inactive":
                previous.status = "Inactive"
                since = decisions.format_time(now - spec.inactive_for)
                iam.tag_user(spec.name, [{"Key": decisions.inactive_since_tag(previous.access_key_id), "Value": since}])
            stored.append(previous)
        current = iam.create_access_key(spec.name)
        current.create_date = created(spec.age)
        if spec.extra_active:
            iam.create_access_key(spec.name).create_date = created(spec.age / 2)
        if not spec.in_secret:
            continue
        stored.append(current)
        secret_name = parameters["SecretNamePrefix"] + spec.name
        iam.tag_user(spec.name, [{"Key": decisions.SECRET_TAG, "Value": secret_name}])  # as the workflow tags it
        for n, key in enumerate(stored):  # the last one written is AWSCURRENT, the one before AWSPREVIOUS
            value = json.dumps(
                {"Version": 1, "UserName": spec.name, "AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}
            )
            token = decisions.key_version_id(key.access_key_id)
            if n == 0:
                sm.create_secret(
                    name=secret_name, secret_string=value, secret_binary=None, description=None, tags=None,
                    kms_key_id=None, client_request_token=token, replica_regions=[], force_overwrite=False,
                )
            else:
                sm.put_secret_value(
                    secret_id=secret_name, secret_string=value, secret_binary=None,
                    client_request_token=token, version_stages=["AWSCURRENT"],
                )
        # The workflow stored the key when it created it: the secret last changed then.
        account.backdate_secret(secret_name, current.create_date.replace(tzinfo=timezone.utc), stack.ACCOUNT_ID)
