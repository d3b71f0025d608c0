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

import blake3
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
    blobs = [p for p in (files / "cache").rglob("*") if p.is_file() and p.parent.name == "blobs"]
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


# ---------------------------------------------------------------- hostile entries
# SPEC §4: entries are untrusted input. Whoever can write to the remote can forge an
# entry; it may restore only the task's own declared outputs, inside the project, with
# permission bits only. The forgeries below edit the entry the first checkout shared
# (its text, so that they do not depend on the entry's layout), then a second checkout
# with the same sources asks for it.

LEGIT = b"alpha\nbeta\n"  # out/all.txt as `build` makes it
PLANTED = b"1/0 # evil\n"  # same size: code the next run would execute
REGULAR_644 = str(0o100644)
SETUID_755 = str(0o104755)


@pytest.fixture(params=["file", "http"])
def remote(request, tmp_path: Path):
    """A remote cache of either kind: (url, the directory holding its files)."""
    if request.param == "http":
        return request.getfixturevalue("server")
    shared = tmp_path / "shared"
    return f"file://{shared}", shared


def entry_files(files: Path) -> list[Path]:
    return sorted(p for p in files.rglob("*") if p.is_file() and p.parent.name == "entries")


def forge_entries(files: Path, *edits: tuple[str, str]) -> None:
    """Rewrite every entry on the remote, replacing text."""
    found = entry_files(files)
    assert found, "the first checkout shared no entry"
    for p in found:
        text = p.read_text()
        for old, new in edits:
            assert old in text, (old, text)
            text = text.replace(old, new)
        p.write_text(text)


def plant_blob(files: Path, data: bytes) -> str:
    """Put a blob beside the shared ones (named by its digest, as a real one is)."""
    legit = blake3.blake3(LEGIT).hexdigest()
    [existing] = [p for p in files.rglob(legit) if p.is_file()]
    name = blake3.blake3(data).hexdigest()
    (existing.parent / name).write_bytes(data)
    return name


def refusals(r) -> list[str]:
    return [line for line in r.err.splitlines() if "refused" in line]


def assert_refused_and_built(r, second: Project, url: str, path: str) -> None:
    """The forged entry was refused (said once, naming the remote, the task and the
    path) and the task ran instead: a miss, not a failure."""
    assert r.code == 0, r
    lines = refusals(r)
    assert len(lines) == 1, r.err
    assert url.split("://")[1] in lines[0] and "build" in lines[0] and path in lines[0], lines
    assert "Traceback" not in r.err
    assert runs(second) == 1
    assert second.read("out/all.txt") == "alpha\nbeta\n"


def shared_then_forged(tmp_path: Path, url: str, files: Path, *edits: tuple[str, str]
                       ) -> Project:
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", url, "build").code == 0
    forge_entries(files, *edits)
    return second


@pytest.mark.parametrize("path", ["../escape.txt", "out/../../escape.txt"])
def test_an_entry_that_climbs_out_of_the_project_is_refused(tmp_path, remote, path):
    url, files = remote
    second = shared_then_forged(tmp_path, url, files, ('"out/all.txt"', f'"{path}"'))
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, path)
    assert not (tmp_path / "escape.txt").exists()


def test_an_entry_with_an_absolute_path_is_refused(tmp_path, remote):
    url, files = remote
    target = tmp_path / "absolute-escape.txt"
    second = shared_then_forged(tmp_path, url, files, ('"out/all.txt"', f'"{target}"'))
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, str(target))
    assert not target.exists()


def test_an_entry_that_writes_a_git_hook_is_refused(tmp_path, remote):
    url, files = remote
    second = shared_then_forged(tmp_path, url, files,
                                ('"out/all.txt"', '".git/hooks/pre-commit"'))
    (second.root / ".git" / "hooks").mkdir(parents=True)
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, ".git/hooks/pre-commit")
    assert list((second.root / ".git" / "hooks").iterdir()) == []


def test_an_entry_that_replaces_the_tasksfile_is_refused(tmp_path, remote):
    url, files = remote
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert first.run("--remote-cache", url, "build").code == 0
    planted = plant_blob(files, PLANTED)
    forge_entries(files, ('"out/all.txt"', '"tasksfile.py"'),
                  (blake3.blake3(LEGIT).hexdigest(), planted))
    tasksfile = second.read("tasksfile.py")
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, "tasksfile.py")
    assert second.read("tasksfile.py") == tasksfile
    again = second.run("--remote-cache", url, "build")  # the tasksfile still loads
    assert again.code == 0, again


def test_an_entry_with_a_setuid_mode_is_refused(tmp_path, remote):
    url, files = remote
    second = shared_then_forged(tmp_path, url, files, (REGULAR_644, SETUID_755))
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, "out/all.txt")
    mode = (second.root / "out" / "all.txt").stat().st_mode
    assert not mode & 0o7000, oct(mode)


WIDE_OUTPUTS = """
@task(inputs=["src/*.txt"], outputs=["out/**"])
def build():
    import pathlib
    pathlib.Path("out").mkdir(exist_ok=True)
    with open("runs.log", "a") as log:
        log.write("build\\n")
    sh("cat src/*.txt > out/all.txt")
"""


def test_an_entry_reaching_outside_through_a_symlinked_directory_is_refused(tmp_path, remote):
    url, files = remote
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    for p in (first, second):
        p.tasksfile(WIDE_OUTPUTS)
    assert first.run("--remote-cache", url, "build").code == 0
    forge_entries(files, ('"out/all.txt"', '"out/sub/pwned.txt"'))
    outside = tmp_path / "outside"
    outside.mkdir()
    (second.root / "out").mkdir()
    (second.root / "out" / "sub").symlink_to(outside)  # planted in the checkout
    r = second.run("--remote-cache", url, "build")
    assert_refused_and_built(r, second, url, "out/sub/pwned.txt")
    assert list(outside.iterdir()) == []


LINKING = """
@task(inputs=["src/*.txt"], outputs=["out/*", "out/empty"])
def build():
    import os, pathlib
    pathlib.Path("out/empty").mkdir(parents=True, exist_ok=True)
    with open("runs.log", "a") as log:
        log.write("build\\n")
    sh("cat src/*.txt > out/all.txt")
    os.symlink("all.txt", "out/latest")
"""


def linking_checkouts(tmp_path: Path) -> tuple[Project, Project]:
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    for p in (first, second):
        p.tasksfile(LINKING)
    return first, second


def test_symlink_and_empty_directory_outputs_come_back_from_the_remote(tmp_path, remote):
    url, _files = remote
    first, second = linking_checkouts(tmp_path)
    assert first.run("--remote-cache", url, "build").code == 0
    r = second.run("--remote-cache", url, "build")
    assert r.code == 0, r
    assert runs(second) == 0
    latest = second.root / "out" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == "all.txt"
    assert (second.root / "out" / "empty").is_dir()
    assert second.read("out/latest") == "alpha\nbeta\n"
    again = second.run("--remote-cache", url, "build")
    assert again.code == 0 and "restored" not in again.out, again


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../.git/hooks"])
def test_an_entry_with_a_symlink_out_of_the_project_is_refused(tmp_path, remote, target):
    url, files = remote
    first, second = linking_checkouts(tmp_path)
    assert first.run("--remote-cache", url, "build").code == 0
    forge_entries(files, ('"target": "all.txt"', f'"target": "{target}"'))
    r = second.run("--remote-cache", url, "build")
    assert r.code == 0, r
    lines = refusals(r)
    assert len(lines) == 1 and "out/latest" in lines[0] and target in lines[0], r.err
    assert runs(second) == 1
    assert os.readlink(second.root / "out" / "latest") == "all.txt"
