"""Fixtures: a temporary project with a tasksfile, and runner run on it as a user would
(a real `python -m runner` subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def output(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, minus what would change runner's behaviour."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNNER_", "PYTEST_", "GITHUB_")) and k not in ("CI",)}
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


class Project:
    """A project directory under tmp_path, and a way to run runner in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str = "", mode: int | None = None) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        if mode is not None:
            p.chmod(mode)
        return p

    def tasksfile(self, text: str) -> Path:
        return self.write("tasksfile.py", "from runner import task, sh, TaskError\n"
                          + textwrap.dedent(text))

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "runner", *args]

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, input: str | None = None) -> Result:
        proc = subprocess.run(self.command(*args), cwd=cwd or self.root, env=env or clean_env(),
                              capture_output=True, text=True, timeout=timeout, input=input)
        return Result(proc)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw: object
              ) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), cwd=self.root, env=env or clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **kw)  # type: ignore[call-overload]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
