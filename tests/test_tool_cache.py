"""tests/tool_cache.py reuses a tool's answer only for the same inputs: a changed input, tool, command or setting
misses and runs the tool again; a failure is never kept; TOOL_CACHE=off runs the tool every time."""

import sys
from pathlib import Path

import pytest
import tool_cache

ROOT = Path(__file__).resolve().parent.parent
# Prints its input file and counts its runs in a file beside it (not an input: a run leaves it changed).
ECHO = "import sys, pathlib; p = pathlib.Path(sys.argv[1]); c = p.with_name('runs'); " \
       "c.write_text(str(int(c.read_text() or 0) + 1) if c.exists() else '1'); print(p.read_text()); sys.exit(int(sys.argv[2]))"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(tool_cache, "CACHE", tmp_path / "cache")
    monkeypatch.delenv("TOOL_CACHE", raising=False)
    return tmp_path / "cache"


def echo(path: Path, status: int = 0):
    result = tool_cache.run([sys.executable, "-c", ECHO, str(path), str(status)], inputs=[path], cwd=path.parent, timeout=60)
    return result.returncode, result.stdout.strip(), int(path.with_name("runs").read_text())


def test_the_same_input_hits_and_a_changed_input_misses(tmp_path):
    template = tmp_path / "work" / "template.yaml"
    template.parent.mkdir()
    template.write_text("first")
    assert echo(template) == (0, "first", 1)
    assert echo(template) == (0, "first", 1)  # the answer kept: the tool did not run
    template.write_text("second")
    assert echo(template) == (0, "second", 2)  # a changed input: the tool runs on it
    template.write_text("first")
    assert echo(template) == (0, "first", 2)  # the first content's answer is still the right one


def test_the_same_content_under_another_name_hits(tmp_path):
    """A test's temporary file (checkov's translated template) has a new name each run: its content is the key."""
    first, second = tmp_path / "a" / "t.json", tmp_path / "b" / "t.json"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text("{}")
    assert tool_cache.key(["tool", str(first)], inputs=[first], cwd=ROOT) == tool_cache.key(
        ["tool", str(second)], inputs=[second], cwd=ROOT
    )


def test_a_failure_is_never_kept(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text("broken")
    assert echo(template, status=1) == (1, "broken", 1)
    assert echo(template, status=1) == (1, "broken", 2)


def test_an_answer_the_test_does_not_expect_is_never_kept(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text("unexpected")
    for runs in (1, 2):
        result = tool_cache.run([sys.executable, "-c", ECHO, str(template), "0"], inputs=[template], cwd=tmp_path,
                                timeout=60, keep=lambda r: r.stdout.strip() == "expected")
        assert (result.stdout.strip(), int((tmp_path / "runs").read_text())) == ("unexpected", runs)


def test_tool_cache_off_runs_the_tool_every_time(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("TOOL_CACHE", "off")
    template = tmp_path / "template.yaml"
    template.write_text("same")
    assert echo(template) == (0, "same", 1)
    assert echo(template) == (0, "same", 2)
    assert not cache.exists()


def test_a_file_added_to_or_changed_in_a_referenced_directory_misses(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("x = 1")
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: code/\n")
    inputs = tool_cache.referenced_paths(template)
    assert tmp_path / "code" in inputs and tmp_path / "samconfig.toml" in inputs

    def key():
        return tool_cache.key(["sam", "build"], inputs=tool_cache.referenced_paths(template), cwd=tmp_path)

    keys = [key()]
    (tmp_path / "code" / "__pycache__").mkdir()
    (tmp_path / "code" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert key() == keys[0]  # bytecode caches are no input
    (tmp_path / "code" / "app.py").write_text("x = 2")
    keys.append(key())
    (tmp_path / "code" / "helper.py").write_text("")
    keys.append(key())
    (tmp_path / "samconfig.toml").write_text("version = 0.1\n")
    keys.append(key())
    assert len(set(keys)) == len(keys)


def test_another_command_environment_setting_or_package_version_misses(tmp_path, monkeypatch):
    template = tmp_path / "template.yaml"
    template.write_text("{}")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("version = 3.11.7\n")
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "checkov-3.2.0.dist-info").mkdir(parents=True)

    def key(*extra, prefixes=("CKV_",)):
        tool_cache._environment_fingerprint.cache_clear()
        return tool_cache.key([str(venv / "bin" / "checkov"), "-f", str(template), *extra], inputs=[template],
                              cwd=tmp_path, env_prefixes=prefixes)

    keys = [key(), key("--compact")]
    monkeypatch.setenv("CKV_FRAMEWORK", "terraform")
    keys.append(key())
    (tmp_path / ".checkov.yaml").write_text("skip-check: CKV_AWS_1\n")
    keys.append(key())
    (site / "checkov-3.2.0.dist-info").rename(site / "checkov-3.2.1.dist-info")
    keys.append(key())
    assert len(set(keys)) == len(keys)


def test_a_directory_is_copied_back_only_for_the_same_inputs(tmp_path):
    source = tmp_path / "template.yaml"
    source.write_text("one")
    builds = []

    def build(output: Path):
        def produce():
            builds.append(output)
            output.mkdir(parents=True)
            (output / "template.yaml").write_text(source.read_text().upper())

        return tool_cache.directory(["sam", "build", "--build-dir", str(output)], inputs=[source], cwd=tmp_path,
                                    output=output, produce=produce)

    assert build(tmp_path / "1" / "build") is False
    assert build(tmp_path / "2" / "build") is True  # the same depth: the same relative paths back to the sources
    assert (tmp_path / "2" / "build" / "template.yaml").read_text() == "ONE"
    assert build(tmp_path / "3" / "deeper" / "build") is False  # sam writes paths relative to the build directory
    source.write_text("two")
    assert build(tmp_path / "4" / "build") is False
    assert (tmp_path / "4" / "build" / "template.yaml").read_text() == "TWO"
    assert len(builds) == 3
