"""A content-addressed cache of what the external tools the tests start (cfn-lint, `sam validate --lint`, checkov,
`sam build`) answered, so that a warm `make test` does not run them again on the same inputs.

The key is a SHA-256 of everything that can change a tool's answer:
- the content of every input file (the template, and every file and directory the template names as a local
  path: the functions' code, the ASL, the SAR licence and readme), and of the tool's configuration files
  (samconfig.toml beside the template; .cfnlintrc and .checkov.yaml/.yml in the working directory and $HOME),
  a missing one counted as missing;
- the tool itself: its virtualenv's pyvenv.cfg (the Python) and the name and version of every package installed
  in it (pip install, upgrade or downgrade of anything there changes the key);
- the exact command line, with the inputs' and outputs' paths put as their roles (a test's temporary file is
  named differently each run, its content is what counts) and the rest of the paths relative to the repository;
  the working directory; the environment variables the tool reads (its own prefixes, given by the caller).

A tool that exits non-zero is never cached: its failure is run again, the real tool, until it is fixed; only a
clean answer is kept (for a process that exits 0 whatever it finds, only the answer its test expects). On a hit the test gets the tool's exit code, stdout and stderr (or, for `sam build`, the
build directory) exactly as the tool gave them for these inputs, and runs all its assertions on them, so a
change to any input misses and is checked by the real tool. What the key cannot see: a package edited in place
inside a virtualenv (not through pip), and a tool that reads the network (none does: checkov runs with
--skip-download). `make clean` removes the cache, and TOOL_CACHE=off runs every tool every time, as a clean
clone (CI) does anyway.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".pytest-tool-cache"
FORMAT = 1  # bump when what an entry holds changes
# Configuration files a tool reads besides its command line, relative to its working directory and to $HOME.
CONFIGURATION = (".cfnlintrc", ".cfnlintrc.yaml", ".cfnlintrc.yml", ".checkov.yaml", ".checkov.yml")


def enabled() -> bool:
    return os.environ.get("TOOL_CACHE", "on").strip().lower() not in ("off", "0", "no", "false")


def files_of(path: Path) -> list[Path]:
    """A file, or every file under a directory (not Python's bytecode caches, which no tool reads)."""
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def referenced_paths(template: Path) -> list[Path]:
    """The template, its samconfig.toml, and every file or directory the template names as a local path (a
    CodeUri, a DefinitionS3Location, the SAR LicenseUrl and ReadmeUrl): what sam reads from beside it."""
    from samtranslator.yaml_helper import yaml_parse

    base = template.resolve().parent
    found: set[Path] = set()

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node and "://" not in node and "\n" not in node and len(node) < 300:
            path = Path(node)
            if not path.is_absolute() and path.name not in ("", ".", "..") and (base / path).exists():
                found.add((base / path).resolve())

    walk(yaml_parse(template.read_text()))
    return [base / template.name, base / "samconfig.toml", *sorted(found)]


@functools.cache
def _environment_fingerprint(venv: Path) -> str:
    """The virtualenv's Python and its installed packages with their versions (dist-info directory names)."""
    digest = hashlib.sha256()
    cfg = venv / "pyvenv.cfg"
    digest.update(cfg.read_bytes() if cfg.exists() else str(venv).encode())
    for dist in sorted(p.name for p in venv.glob("lib/python*/site-packages/*.dist-info")):
        digest.update(dist.encode() + b"\n")
    return digest.hexdigest()


def _venv_of(executable: str) -> Path:
    """The virtualenv (or installation) an executable belongs to: the nearest parent with a pyvenv.cfg."""
    path = Path(executable).absolute()
    for parent in path.parents:
        if (parent / "pyvenv.cfg").exists():
            return parent
    return Path(sys.prefix)


def _digest_of(path: Path) -> str:
    if not path.exists():
        return "missing"
    digest = hashlib.sha256()
    for file in files_of(path):
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _shown(path: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def key(command: list[str], *, inputs: Iterable[Path], cwd: Path, outputs: dict[str, Path] | None = None,
        env_prefixes: Iterable[str] = (), env: dict | None = None) -> str:
    """The cache key of running ``command`` in ``cwd`` on ``inputs`` (files or directories); ``outputs`` names
    the paths (an output directory, a scratch working directory) whose location changes nothing but their name."""
    inputs = [Path(p) for p in inputs]
    roles = {os.path.abspath(p): f"<input {i}>" for i, p in enumerate(inputs)}
    roles.update({os.path.abspath(p): f"<{name}>" for name, p in (outputs or {}).items()})

    def argument(arg: str) -> str:
        if arg in roles or os.path.abspath(arg) in roles:
            return roles.get(arg) or roles[os.path.abspath(arg)]
        return _shown(Path(arg)) if os.path.isabs(arg) else arg

    configuration = [[where, name, _digest_of(Path(directory) / name)]
                     for where, directory in (("cwd", cwd), ("home", Path.home())) for name in CONFIGURATION]
    prefixes = tuple(env_prefixes)
    material = {
        "format": FORMAT,
        "command": [argument(a) for a in command],
        "cwd": argument(str(cwd)),
        "tool": _environment_fingerprint(_venv_of(command[0])),
        # An input inside the repository by its path, one elsewhere (a test's temporary file) by its content only.
        "inputs": [[_shown(p) if not os.path.isabs(_shown(p)) else roles[os.path.abspath(p)], _digest_of(p)]
                   for p in inputs],
        "configuration": configuration,
        "environment": sorted((k, v) for k, v in (os.environ if env is None else env).items()
                              if prefixes and k.startswith(prefixes)),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def run(command: list[str], *, inputs: Iterable[Path], cwd: Path = ROOT, timeout: float,
        env_prefixes: Iterable[str] = (), keep=None) -> subprocess.CompletedProcess:
    """``subprocess.run(command, cwd=cwd, capture_output=True, text=True)``, or what it returned for the same
    key before: only an exit code 0, and only an answer ``keep(result)`` accepts when given (what the test
    expects: a process that exits 0 whatever it found must not keep a wrong verdict)."""
    entry = CACHE / (key(command, inputs=inputs, cwd=cwd, env_prefixes=env_prefixes) + ".json")
    if enabled() and entry.is_file():
        saved = json.loads(entry.read_text())
        return subprocess.CompletedProcess(command, saved["returncode"], saved["stdout"], saved["stderr"])
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if enabled() and result.returncode == 0 and (keep is None or keep(result)):
        _write_atomically(entry, json.dumps({"returncode": 0, "stdout": result.stdout, "stderr": result.stderr}))
    return result


def directory(command: list[str], *, inputs: Iterable[Path], cwd: Path, output: Path, produce,
              env_prefixes: Iterable[str] = (), env: dict | None = None) -> bool:
    """Fill ``output`` (a directory ``command`` writes) by calling ``produce()``, or with a copy of what it wrote
    for the same key before. The key holds ``output``'s path relative to the repository's root, as a tool writes
    relative paths back to the sources (sam build does). Returns True on a hit."""
    output = Path(output)
    relative_root = os.path.relpath(ROOT, output)
    entry = CACHE / (key([*command, relative_root], inputs=inputs, cwd=cwd, outputs={"output": output, "cwd": cwd},
                         env_prefixes=env_prefixes, env=env) + ".d")
    if enabled() and entry.is_dir():
        shutil.copytree(entry, output, dirs_exist_ok=True)
        return True
    produce()  # raises (or fails the test) when the tool fails: nothing is kept
    if enabled():
        CACHE.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=".staging-"))
        shutil.copytree(output, staging, dirs_exist_ok=True)
        try:
            staging.rename(entry)
        except OSError:  # another worker stored the same entry meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return False


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=".staging-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(staging, path)
