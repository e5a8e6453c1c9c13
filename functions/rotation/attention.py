"""What a person must do when the workflow can no longer finish on its own: a secret changed or deleted by hand
(its consumers may be locked out: _secret_lost, with the fix _fresh_key_advice), and a user that left rotation
with its rotation unfinished (left_rotation).

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers; callers use
``decisions.left_rotation``.
"""

from __future__ import annotations

from facts import Decision, Key, Secret
from naming import SECRET_VERSION_PREFIX


def _fresh_key_advice(user: str, active: list[Key]) -> str:
    """How a person has the workflow store a fresh key for ``user``, from the keys it has now."""
    run = f'run on demand with {{"users": ["{user}"], "force": true}} to store a fresh key'
    if len(active) >= 2:
        return f"deactivate whichever of {' and '.join(k.id for k in active)} no consumer uses (IAM allows two keys), then {run}"
    return run


def _secret_lost(user: str, secret: Secret, stale: bool, active: list[Key]) -> str | None:
    """Why consumers reading the user's secret may be locked out by a change made by hand, and the fix; or None."""
    fix = _fresh_key_advice(user, active)
    its_secret = f"its secret {secret.name}" if secret.name else "its secret"
    if stale:
        return (
            f"{its_secret} holds key {secret.key_id}, which is not an Active key of the user, so consumers reading "
            f"the secret are locked out, and nothing is retired: re-activate that key (aws iam update-access-key "
            f"--user-name {user} --access-key-id {secret.key_id} --status Active), or {fix}"
        )
    if secret.foreign:
        return (
            f"{its_secret} was last written outside this workflow (its AWSCURRENT version is not "
            f"{SECRET_VERSION_PREFIX}<key id>), so which key its consumers get is unknown: if it is not a working key "
            f"of {user}, they are locked out. Nothing is retired until the workflow stores a key again: {fix}"
        )
    if not secret.exists and secret.recorded:
        moved = (
            f" The key is now kept in {secret.name} (the user was renamed, or SecretNamePrefix changed): point "
            f"consumers there, and delete {secret.recorded} if it still exists."
            if secret.name and secret.recorded != secret.name
            else ""
        )
        return (
            f"its secret {secret.recorded}, in which this workflow stored the user's key, no longer exists (deleted "
            f"without a recovery window), so its consumers are locked out, and nothing is retired: {fix}.{moved}"
        )
    return None


def left_rotation(user: str, keys: list[Key] | None, secret: Secret, why: str) -> Decision | None:
    """A secret the workflow wrote whose user is no longer managed (``why``: untagged, moved off UserPath,
    deleted when ``keys`` is None): what a person must finish, or None when nothing is left half done."""
    if secret.scheduled_for_deletion or secret.key_id is None:
        return None  # on its way out, or not the workflow's
    if keys is None:
        return Decision(
            user,
            "attention",
            f"{why}, but its secret {secret.name} still holds its key {secret.key_id}, which no longer works: delete "
            f"the secret once nothing reads it (aws secretsmanager delete-secret --secret-id {secret.name})",
        )
    held = next((k for k in keys if k.id == secret.key_id), None)
    others = [k for k in keys if k is not held]
    if held is not None and held.active and not others:
        return None  # steady: its one key is in the secret; it simply is not rotated any more
    states = ", ".join(
        f"{k.id} ({'Active' if k.active else 'Inactive'}{', in the secret' if k is held else ''})" for k in keys
    ) or "none"
    finish = (
        f"deactivate {' and '.join(k.id for k in others if k.active)} once no consumer uses it, then delete it"
        if any(k.active for k in others)
        else f"delete {' and '.join(k.id for k in others)} once you no longer need it as a fallback"
        if others
        else f"re-activate {secret.key_id} or store a working key in {secret.name}"
    )
    return Decision(
        user,
        "attention",
        f"{why}, with its rotation unfinished: keys {states}. Nothing is rotated or retired for it any more: bring "
        f"it back into scope and the next run finishes the work, or finish by hand: {finish}",
    )
