"""Fixtures for the first-party plugins' tests: everything of tests/conftest.py (the
`project` fixture, `clean_env`, `run_in_pty` ...) and a local HTTP server. The helpers
are in plugin_testing.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# tests/conftest.py and this file are both module `conftest` to pytest, and test modules
# say `from conftest import ...`: whichever of the two is in sys.modules must offer the
# same names, so this one takes all of the other's.
_spec = importlib.util.spec_from_file_location(
    "_runner_tests_conftest", REPO / "tests" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_core)
globals().update({k: v for k, v in vars(_core).items() if not k.startswith("__")})


@pytest.fixture
def http_server():
    """A local HTTP server that answers 200 and records every request."""
    from plugin_testing import Recorder

    with Recorder() as server:
        yield server
