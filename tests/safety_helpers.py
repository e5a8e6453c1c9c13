"""Shared by tests/test_safety_*.py (not a test module): the forced on-demand input they replay, email text with
its wrapping undone, and moto's IAM backend for what the API does not give a test."""

from test_rotation_workflow import START

from emulator.stack import ACCOUNT_ID

FORCED = {"time": START, "users": ["app"], "force": True}  # an on-demand run that rotates app now


def moto_iam_backend():
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["global"]


def flat(text):
    """Text with its line wrapping undone (email bodies wrap at 76 characters)."""
    return " ".join(text.split())
