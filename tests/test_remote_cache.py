"""A cache shared through a real server (nginx with WebDAV PUT) or a directory: what
one checkout built, another restores; a server that is down or serves damaged data
costs local work, never a failed build or a wrong output."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Project, clean_env

TASKS = """
@task(inputs=["src/*.txt"], outputs=["out/all.txt"])
def build():
    import pathlib
    pathlib.Path("out").mkdir(exist_ok=True)
    with open("runs.log", "a") as log:
        log.write("build\\n")
    sh("cat src/*.txt > out/all.txt")
"""

NGINX_CONF = """
{user}
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 100m;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path):
    """nginx serving and accepting PUTs under a temporary directory: (url, its files)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (.ci/run installs nginx-core)")
    d = tmp_path / "nginx"
    (d / "www").mkdir(parents=True)

    port = free_port()
    conf = d / "nginx.conf"
    # Started as root, nginx would run its workers as `nobody`, who cannot enter the
    # test's temporary directory: keep them as the user running the tests.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(d=d, port=port, user=user))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(d)],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"nginx did not start: {proc.stderr.read().decode()[:300]}")
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/cache", d / "www"
    finally:
        proc.terminate()
        proc.wait(10)


def checkout(tmp_path: Path, name: str) -> Project:
    """A clone of the same project in its own directory (its own local cache)."""
    p = Project(tmp_path / name)
    p.root.mkdir()
    p.tasksfile(TASKS)
    p.write("src/a.txt", "alpha\n")
    p.write("src/b.txt", "beta\n")
    return p


def runs(p: Project) -> int:
    log = p.root / "runs.log"
    return len(log.read_text().split()) if log.exists() else 0


def test_what_one_checkout_built_another_restores_from_the_server(tmp_path, server):
    url, _files = server
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    r = first.run("--remote-cache", url, "build")
    assert r.code == 0, r
    r = second.run("--remote-cache", url, "build")
    assert r.code == 0, r
    assert runs(first) == 1 and runs(second) == 0  # the second did not build
    assert second.read("out/all.txt") == "alpha\nbeta\n"
    assert "restored build" in r.out


def test_the_remote_cache_can_be_configured_instead_of_given(tmp_path, server):
    url, _files = server
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    first.write("pyproject.toml", f'[tool.runner]\nremote_cache = "{url}"\n')
    assert first.run("build").code == 0
    r = second.run("build", env=clean_env(RUNNER_REMOTE_CACHE=url))
    assert r.code == 0, r
    assert runs(second) == 0


def test_a_dry_run_says_the_outputs_are_on_the_server(tmp_path, server):
    url, _files = server
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", url, "build").code == 0
    r = second.run("--remote-cache", url, "-n", "build")
    assert r.code == 0, r
    assert "remote cache" in r.out
    assert not (second.root / "out").exists()


def test_a_different_input_is_not_taken_from_the_server(tmp_path, server):
    url, _files = server
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", url, "build").code == 0
    second.write("src/b.txt", "changed\n")
    assert second.run("--remote-cache", url, "build").code == 0
    assert runs(second) == 1
    assert second.read("out/all.txt") == "alpha\nchanged\n"


def test_a_damaged_blob_on_the_server_is_a_miss_not_a_wrong_output(tmp_path, server):
    url, files = server
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", url, "build").code == 0
    blobs = list((files / "cache" / "runner" / "v1" / "blobs").iterdir())
    assert blobs
    for b in blobs:
        b.write_bytes(b"forged content\n")
    r = second.run("--remote-cache", url, "build")
    assert r.code == 0, r
    assert runs(second) == 1
    assert second.read("out/all.txt") == "alpha\nbeta\n"


def test_a_server_that_is_down_costs_local_work_not_a_failure(tmp_path):
    p = checkout(tmp_path, "one")
    r = p.run("--remote-cache", f"http://127.0.0.1:{free_port()}/cache", "build")
    assert r.code == 0, r
    assert runs(p) == 1
    assert r.err.count("remote cache") == 1  # said once
    assert "working without it" in r.err
    assert "Traceback" not in r.err


def test_a_shared_directory_works_as_a_remote_cache(tmp_path):
    shared = tmp_path / "shared"
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", f"file://{shared}", "build").code == 0
    r = second.run("--remote-cache", f"file://{shared}", "build")
    assert r.code == 0, r
    assert runs(second) == 0
    assert second.read("out/all.txt") == "alpha\nbeta\n"


def test_a_remote_cache_url_of_another_kind_is_a_usage_error(tmp_path):
    p = checkout(tmp_path, "one")
    r = p.run("--remote-cache", "ftp://example/cache", "build")
    assert r.code == 2, r
    assert "ftp://example/cache" in r.err
