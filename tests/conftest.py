"""Shared set-up: the Lambda's directory on sys.path (as the Lambda runtime has it) and a fake AWS environment."""

import gc
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions" / "rotation"))
sys.path.insert(0, str(ROOT / "functions" / "key_check"))
sys.path.insert(0, str(ROOT))

# No test may reach AWS: fake credentials, a region, and no instance-metadata probing.
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0",
    }
)

# Python's cycle collector, at its default thresholds, runs a young collection every 700 net allocations of
# containers and, every 100th, a full one over every object (moto's backends, botocore's models: ~400,000 of them);
# the emulated runs allocate so much that it took about a fifth of their time. Collections rarer (a full one about
# every 1,000th instead of every 100th) cost tens of MB more and change no result: an object freed by its last
# reference, most of them, still goes at once.
gc.set_threshold(10_000, 10, 10)

# Each worker would parse the ASL again for each definition (~0.7 s each, ~25 a run); the parsed programs are kept
# beside the tools' answers instead, under the same switch (TOOL_CACHE=off parses every time, as a clean clone does).
import tool_cache  # noqa: E402  (after sys.path has the tests' directory's neighbours)
from emulator import speed  # noqa: E402

if tool_cache.enabled():
    speed.keep_parsed_programs_in(tool_cache.CACHE / "parsed-asl")


@pytest.fixture
def root() -> Path:
    return ROOT


def pytest_collection_modifyitems(items):
    """The slowest tests first (marker ``slow``): `make test` spreads tests over the cores as they free up, and a
    test of a minute that started last would keep one core busy while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the rest keep their order
