"""Helpers for the first-party plugins' tests: enable a plugin in a temporary project,
install one as pip would (a .dist-info with its entry point), and a local HTTP server
that records what it is sent. (Not in conftest.py: test modules import `conftest` by
name, and tests/ has one too.)"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

from conftest import clean_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from conftest import Project

PLUGINS = Path(__file__).resolve().parent


def plugin_dir(name: str) -> Path:
    """The package directory of a first-party plugin: plugins/notify/runner_notify."""
    return PLUGINS / name / f"runner_{name}"


def enable(project: Project, *plugins: str | Path, toml: str = "") -> None:
    """Write the project's pyproject.toml: `[tool.runner] plugins` naming these plugins
    (first-party names, or paths), then `toml`."""
    paths = [str(plugin_dir(p)) if isinstance(p, str) and "/" not in p else str(p) for p in plugins]
    project.write(
        "pyproject.toml",
        "[tool.runner]\nplugins = " + json.dumps(paths) + "\n\n" + toml,
    )


def install_dist_info(site: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """What `pip install` leaves for runner to find a plugin by: a NAME-VERSION.dist-info
    directory with METADATA and an entry_points.txt whose [runner.plugins] section maps
    plugin names to modules."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[runner.plugins]\n{lines}")
    return info


def declared_entry_points(plugin: str) -> dict[str, str]:
    """The `runner.plugins` entry points that plugins/NAME/pyproject.toml declares."""
    import tomllib

    doc = tomllib.loads((PLUGINS / plugin / "pyproject.toml").read_text())
    return dict(doc["project"]["entry-points"]["runner.plugins"])


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> dict:
        return json.loads(self.body)


class Recorder:
    """A local HTTP server (a thread) that records each request and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[Request] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                recorder.requests.append(
                    Request(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def refused_url() -> str:
    """A local URL nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def env_without(*prefixes: str, **extra: str) -> dict[str, str]:
    """clean_env() minus the variables starting with these prefixes (OTEL_ ...)."""
    env = {k: v for k, v in clean_env(**extra).items() if not k.startswith(prefixes)}
    env.update(extra)
    return env
