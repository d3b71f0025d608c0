"""runner's own tasks: runner builds, lints and tests runner.

    runner            lint and test (what CI runs)
    runner test -k X  a part of the test suite
    runner --list     everything here
"""

import os
import sys

from runner import TaskError, sh, task

PY = sys.executable
# What the tools read besides the code (`runner --audit=strict` checks these lists):
# ruff and hatchling follow .gitignore; the wheel holds the `runner` script.
CODE = ["runner/**/*.py", "runner/_scripts/*", "plugins/**", "pyproject.toml", ".gitignore"]
TESTS = ["tests/**/*.py", "tests/data/**", "tests/tools/**", "examples/**", "README.md"]


@task(inputs=[*CODE, "tests/**/*.py", "tasksfile.py", "benchmarks/**/*.py"],
      tools=["ruff", "mypy"], ci=True)
def lint():
    """Lint (ruff) and type-check (mypy) the code."""
    sh([PY, "-m", "ruff", "check", "runner", "plugins", "tests", "benchmarks", "tasksfile.py"])
    sh([PY, "-m", "ruff", "format", "--check", "runner", "plugins"])
    sh([PY, "-m", "mypy"])


@task(inputs=[*CODE, *TESTS, "tasksfile.py", ".github/workflows/*.yml"],
      env=["PYTEST_ADDOPTS"], tools=["pytest"], timeout=1800,
      # On GitHub the job first installs what the tests use (nginx, chromium, strace,
      # actionlint ...): without them those tests would skip.
      ci={"dispatch": True, "needs_setup": "bash .ci/setup"})
def test(k: str = "", verbose: bool = False):
    """Run the whole test suite (or the tests matching -k)."""
    sh([PY, "-m", "pytest", "-q" if not verbose else "-v", "-p", "no:cacheprovider",
        *(["-k", k] if k else [])])


@task(deps=[lint, test], default=True)
def check():
    """Everything CI runs: lint and test."""


@task(inputs=CODE + ["README.md"], outputs=["dist/*.whl"])
def build():
    """Build the wheel into dist/."""
    sh([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."])


@task
def compile():
    """Byte-compile runner (as pip does for a regular install), before benchmarking."""
    sh([PY, "-m", "compileall", "-q", "runner"])


@task(deps=[compile])
def bench(scenario: str = "S0 S1 S2 S3 S4 S5 S6", kit: str = "../shared/bench", runs: int = 5):
    """Run the benchmark kit (runner beside make, go-task, doit ...) and print its table."""
    if not os.path.isdir(kit):
        raise TaskError(f"no benchmark kit at {kit} (pass --kit PATH)")
    sh(["bash", f"{kit}/setup.sh", "."])
    sh([PY, f"{kit}/bench.py", "--runs", str(runs), "--scenario", *scenario.split()])


@task(deps=[compile])
def bench_scale(sizes: str = "1000 10000 100000"):
    """How no-op time grows with the number of input files (it must stay linear)."""
    sh([PY, "benchmarks/noop_scaling.py", *sizes.split()])
