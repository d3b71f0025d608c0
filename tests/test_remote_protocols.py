"""The remote cache protocols against real servers: BuildGrid for the Remote Execution
API over gRPC, nginx (WebDAV) for Bazel's HTTP cache protocol, both started here
(tests/remote_servers.py). What one client stores another reads back whole; only
missing blobs are reported missing; a blob larger than a batch streams through in
chunks; damaged content, wrong credentials, a silent server and a server that dies
mid-transfer each end in one clear error, never a hang, a wrong file or a secret in a
message."""

from __future__ import annotations

import os
import shutil
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from remote_servers import (
    BuildGrid,
    Certificates,
    Nginx,
    Relay,
    Silent,
    ensure_buildgrid,
    htpasswd,
    nginx_binary,
)

from runner import deadline
from runner.entries import DIRECTORY, FILE, NO_DIGEST, Output, refusal
from runner.fingerprint import digest as blake3
from runner.remote_protocols import Credentials, connect
from runner.remote_protocols import messages as m
from runner.remote_protocols.cache import ActionCache
from runner.remote_protocols.client import Blob
from runner.remote_protocols.conversion import empty_tree
from runner.remote_protocols.digests import CHUNK, action_digest, digest_of, file_digest
from runner.remote_protocols.errors import (
    AuthFailed,
    CorruptBlob,
    Malformed,
    RemoteError,
    Unsupported,
)

BIG = 64 << 20  # bytes: a blob far over any batch limit
TOKEN = "s3cr3t-t0ken-for-tests"


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def bgd() -> Path:
    found = ensure_buildgrid()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def buildgrid(bgd, tmp_path_factory):
    server = BuildGrid(bgd, tmp_path_factory.mktemp("buildgrid"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx_path() -> str:
    found = nginx_binary()
    if found is None:
        pytest.skip("nginx is not installed (.ci/setup installs nginx-core)")
    return found


@pytest.fixture(scope="module")
def nginx(nginx_path, tmp_path_factory):
    server = Nginx(nginx_path, tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    needs_openssl()
    return Certificates(tmp_path_factory.mktemp("certs"))


def needs_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (.ci/setup installs it)")


@pytest.fixture(params=["grpc", "http"])
def protocol(request) -> str:
    return request.param


@pytest.fixture
def server(protocol, request):
    """The server of the protocol under test: BuildGrid or nginx."""
    return request.getfixturevalue("buildgrid" if protocol == "grpc" else "nginx")


@pytest.fixture
def client(server):
    with connect(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with open(path, "wb") as f:
        for _ in range(BIG // CHUNK):
            f.write(os.urandom(CHUNK))
    return path


def unique(text: str) -> bytes:
    """Content no other test stores (the servers live for the whole module)."""
    return f"{text} {time.time_ns()} {os.urandom(4).hex()}\n".encode()


def local_store(tmp_path: Path, contents: list[bytes]) -> dict[bytes, Path]:
    """A stand-in for runner's local store: each content under its BLAKE3."""
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    found = {}
    for data in contents:
        d = blake3(data)
        (store / d.hex()).write_bytes(data)
        found[d] = store / d.hex()
    return found


# ---------------------------------------------------------------- capabilities


def test_buildgrid_offers_sha256_and_its_batch_limit(buildgrid):
    with connect(buildgrid.url) as c:
        caps = c.capabilities()
        assert m.SHA256 in caps.digest_functions
        assert c.batch_limit() == caps.max_batch_total_size_bytes > 0
        assert c.can_update()


def test_a_read_only_action_cache_refuses_a_store_before_any_upload(bgd, tmp_path):
    server = BuildGrid(bgd, tmp_path / "bg", updates=False)
    try:
        data = unique("read-only")
        store = local_store(tmp_path, [data])
        outputs = [Output.file("out/a", blake3(data), 0o644, len(data))]
        with connect(server.url) as c:
            assert not c.can_update()
            with pytest.raises(Unsupported, match="does not accept action results"):
                ActionCache(c).store(b"r" * 32, outputs, 1.0, lambda d: str(store[d]))
            assert c.find_missing([digest_of(data)]) == [digest_of(data)]
    finally:
        server.stop()


# ---------------------------------------------------------------- entries


def test_what_one_client_stores_another_reads_back_whole(server, tmp_path):
    script, text, secret = unique("#!/bin/sh"), unique("text"), unique("private")
    store = local_store(tmp_path, [script, text, secret])
    outputs = [
        Output.file("out/run.sh", blake3(script), 0o755, len(script)),
        Output.file("out/notes.txt", blake3(text), 0o644, len(text)),
        Output.file("out/key", blake3(secret), 0o600, len(secret)),
        Output.symlink("out/latest", "notes.txt"),
        Output.directory("out/empty", 0o750),
    ]
    fingerprint = os.urandom(32)
    with connect(server.url) as writer:
        ActionCache(writer).store(fingerprint, outputs, 2.25, lambda d: str(store[d]))

    with connect(server.url) as reader:
        cache = ActionCache(reader)
        entry = cache.lookup(fingerprint)
        assert entry is not None
        assert [o.row() for o in entry.outputs] == [o.row() for o in outputs]
        assert entry.duration == pytest.approx(2.25)
        assert refusal(entry.outputs, ["out/**"], str(tmp_path)) is None
        for o, data in zip(outputs[:3], (script, text, secret), strict=True):
            into = tmp_path / f"fetched-{os.path.basename(o.path)}"
            assert cache.fetch(entry, o, str(into))
            assert into.read_bytes() == data
            assert blake3(into.read_bytes()) == o.digest  # what the local store checks


def test_an_unknown_fingerprint_is_a_miss(client):
    assert ActionCache(client).lookup(os.urandom(32)) is None


def test_an_entry_is_stored_under_the_documented_action_key(server, tmp_path):
    data = unique("keyed")
    store = local_store(tmp_path, [data])
    fingerprint = os.urandom(32)
    outputs = [Output.file("out/a", blake3(data), 0o644, len(data))]
    with connect(server.url) as c:
        ActionCache(c).store(fingerprint, outputs, 1.0, lambda d: str(store[d]))
        raw = c.get_action_result(action_digest(fingerprint))
    assert raw is not None
    result = m.ActionResult.decode(raw)
    assert [f.path for f in result.output_files] == ["out/a"]
    assert result.output_files[0].digest == digest_of(data)
    if isinstance(server, Nginx):  # Bazel's HTTP layout: /ac/<sha256 of the key>
        import hashlib

        key = hashlib.sha256(b"runner-action-v1\0" + fingerprint).hexdigest()
        assert (server.files / "ac" / key).read_bytes() == raw


def test_a_task_entry_that_breaks_the_rule_reads_back_for_the_caller_to_refuse(server, tmp_path):
    # Anyone who can write to the cache can store this: conversion hands it over as
    # Output records, modes as they are, and runner's one rule refuses it.
    data = unique("setuid")
    store = local_store(tmp_path, [data])
    fingerprint = os.urandom(32)
    outputs = [Output(path="out/tool", digest=blake3(data), mode=FILE | 0o4755, size=len(data))]
    with connect(server.url) as c:
        ActionCache(c).store(fingerprint, outputs, 1.0, lambda d: str(store[d]))
        entry = ActionCache(c).lookup(fingerprint)
    assert entry is not None and entry.outputs[0].mode == FILE | 0o4755
    assert "more than permission bits" in (refusal(entry.outputs, ["out/*"], str(tmp_path)) or "")


def test_the_result_of_a_failed_action_is_malformed_not_a_hit(client):
    fingerprint = os.urandom(32)
    client.update_action_result(action_digest(fingerprint), m.ActionResult(exit_code=1).encode())
    with pytest.raises(Malformed, match="failed action"):
        ActionCache(client).lookup(fingerprint)


def test_a_directory_with_content_is_malformed(client):
    fingerprint = os.urandom(32)
    tree = m.Tree(root=m.Directory(symlinks=[m.SymlinkNode(name="x", target="/etc")])).encode()
    client.upload([Blob(digest_of(tree), data=tree)])
    result = m.ActionResult(
        output_directories=[m.OutputDirectory(path="out/d", tree_digest=digest_of(tree))]
    )
    client.update_action_result(action_digest(fingerprint), result.encode())
    with pytest.raises(Malformed, match="not empty"):
        ActionCache(client).lookup(fingerprint)


def test_an_entry_whose_tree_is_gone_is_a_miss(nginx, tmp_path):
    fingerprint = os.urandom(32)
    with connect(nginx.url) as c:
        ActionCache(c).store(fingerprint, [Output.directory("out/d", 0o755)], 1.0, str)
        tree = digest_of(empty_tree(0o755).encode())
        (nginx.files / "cas" / tree.hash).unlink()
        assert ActionCache(c).lookup(fingerprint) is None


def test_an_empty_directory_is_a_tree_of_one_empty_directory_in_the_cas(client):
    fingerprint = os.urandom(32)
    ActionCache(client).store(fingerprint, [Output.directory("out/d", 0o700)], 1.0, str)
    result = m.ActionResult.decode(client.get_action_result(action_digest(fingerprint)))
    (d,) = result.output_directories
    tree = m.Tree.decode(client.read_blob(d.tree_digest))
    assert tree.root is not None and not (tree.root.files or tree.root.directories)
    assert tree.root.node_properties.unix_mode.value == 0o700
    entry = ActionCache(client).lookup(fingerprint)
    assert [(o.path, o.mode, o.digest) for o in entry.outputs] == [
        ("out/d", DIRECTORY | 0o700, NO_DIGEST)
    ]


# ---------------------------------------------------------------- blobs


def test_find_missing_reports_only_the_missing_blobs(client):
    present = [unique("present one"), unique("present two")]
    absent = [unique("absent one"), unique("absent two")]
    client.upload([Blob(digest_of(b), data=b) for b in present])
    asked = [digest_of(b) for b in present + absent]
    assert sorted(client.find_missing(asked), key=str) == sorted(
        (digest_of(b) for b in absent), key=str
    )
    assert client.find_missing([digest_of(b"")]) == []  # the empty blob is always there


def test_a_blob_over_the_batch_limit_streams_in_chunks(client, big_file, tmp_path):
    d = file_digest(str(big_file))
    if client.name.startswith("grpc"):
        assert d.size_bytes > client.batch_limit()  # so: ByteStream, both ways
    tracemalloc.start()
    try:
        client.upload([Blob(d, path=str(big_file))])
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        into = tmp_path / "big.copy"
        assert client.download(d, str(into))
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.find_missing([d]) == []
    assert file_digest(str(into)) == d
    # A few chunks in flight at most, never the blob.
    assert upload_peak < 8 * CHUNK, upload_peak
    assert download_peak < 8 * CHUNK, download_peak


def test_a_blob_missing_on_the_server_downloads_nothing(client, tmp_path):
    into = tmp_path / "never"
    assert client.download(digest_of(unique("not there")), str(into)) is False
    assert not into.exists()


def test_a_file_that_changed_since_it_was_hashed_is_never_committed(client, tmp_path):
    original = os.urandom(5 * CHUNK + 3)  # over BuildGrid's batch limit: ByteStream
    d = digest_of(original)
    changed = tmp_path / "changed"
    changed.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(CorruptBlob, match="changed since it was hashed"):
        client.upload([Blob(d, path=str(changed))])
    assert client.find_missing([d]) == [d]


def test_a_corrupted_blob_served_over_http_is_detected(nginx, tmp_path):
    data = unique("to be damaged") * 1000
    d = digest_of(data)
    with connect(nginx.url) as c:
        c.upload([Blob(d, data=data)])
        served = nginx.files / "cas" / d.hash
        served.write_bytes(data[:-1] + b"?")  # same size, other content
        into = tmp_path / "blob"
        with pytest.raises(CorruptBlob, match="does not match its SHA-256"):
            c.download(d, str(into))
        assert not into.exists()
        with pytest.raises(CorruptBlob):
            c.read_blob(d)
        served.write_bytes(data[:10])  # a short copy: reported missing, stored again
        assert c.find_missing([d]) == [d]


def test_a_corrupted_blob_served_over_grpc_is_detected(bgd, tmp_path):
    server = BuildGrid(bgd, tmp_path / "bg", storage_dir=tmp_path / "cas")
    try:
        small, large = unique("small") * 100, os.urandom(5 * CHUNK)
        with connect(server.url) as c:
            for data in (small, large):  # a batch read, then ByteStream
                d = digest_of(data)
                c.upload([Blob(d, data=data)])
                (stored,) = [p for p in (tmp_path / "cas").rglob(d.hash[2:]) if p.is_file()]
                stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
                into = tmp_path / f"blob-{d.size_bytes}"
                with pytest.raises(CorruptBlob, match="does not match its SHA-256"):
                    c.download(d, str(into))
                assert not into.exists()
    finally:
        server.stop()


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_a_server_that_never_answers_hits_the_total_deadline(scheme):
    silent = Silent()
    try:
        url = f"{scheme}://127.0.0.1:{silent.port}" + ("/cache" if scheme == "http" else "")
        started = time.monotonic()
        with connect(url, timeout=1.0) as c, pytest.raises(deadline.DeadlineExceeded):
            c.get_action_result(action_digest(b"x"))
        assert time.monotonic() - started < 30  # ended by the deadline, not by a hang
        assert silent.accepted  # it did connect: the silence is what timed out
    finally:
        silent.close()


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_a_request_is_given_up_at_once_when_the_run_is_interrupted(scheme):
    silent = Silent()
    interrupt = deadline.Interrupt()
    try:
        url = f"{scheme}://127.0.0.1:{silent.port}" + ("/cache" if scheme == "http" else "")
        threading.Timer(0.5, interrupt.set, args=("Ctrl-C",)).start()
        started = time.monotonic()
        with (
            connect(url, timeout=600.0, interrupt=interrupt) as c,
            pytest.raises(deadline.Interrupted, match="Ctrl-C"),
        ):
            c.find_missing([digest_of(b"anything")])
        assert time.monotonic() - started < 60  # long before the 600 s deadline
    finally:
        silent.close()


def test_nginx_stopped_mid_download_is_a_clean_error(nginx_path, tmp_path):
    server = Nginx(nginx_path, tmp_path / "nginx", slow_rate="1m")
    try:
        data = os.urandom(8 * CHUNK)
        d = digest_of(data)
        with connect(server.url) as c:
            c.upload([Blob(d, data=data)])
        into = tmp_path / "blob"
        failure = download_while(lambda: into.exists() and into.stat().st_size > CHUNK,
                                 server.stop, f"{server.base}/slow", d, into)
        assert isinstance(failure, RemoteError), failure
        assert "broke off" in str(failure) or "RemoteDisconnected" in str(failure)
        assert not into.exists()
    finally:
        server.stop()


def test_buildgrid_stopped_mid_download_is_a_clean_error(bgd, tmp_path):
    server = BuildGrid(bgd, tmp_path / "bg")
    relay = Relay(server.port, rate=2 << 20)
    try:
        data = os.urandom(16 * CHUNK)
        d = digest_of(data)
        with connect(server.url) as c:
            c.upload([Blob(d, data=data)])
        into = tmp_path / "blob"
        failure = download_while(lambda: relay.forwarded > 2 * CHUNK, server.kill,
                                 f"grpc://127.0.0.1:{relay.port}", d, into)
        assert isinstance(failure, RemoteError), failure
        assert "ByteStream/Read" in str(failure)
        assert not into.exists()
    finally:
        relay.close()
        server.stop()


def download_while(ready, stop, url, d, into) -> BaseException | None:
    """Download `d` from `url` into `into` on a thread; once `ready()`, `stop()` the
    server. What the download raised."""
    raised: list[BaseException] = []

    def download() -> None:
        try:
            with connect(url, timeout=120.0) as c:
                c.download(d, str(into))
        except BaseException as e:
            raised.append(e)

    t = threading.Thread(target=download)
    t.start()
    end = time.monotonic() + 60
    while not ready() and t.is_alive() and time.monotonic() < end:
        time.sleep(0.01)
    assert t.is_alive(), f"the download ended before the server was stopped: {raised}"
    stop()
    t.join(60)
    assert not t.is_alive()
    return raised[0] if raised else None


# ---------------------------------------------------------------- credentials


def test_buildgrid_takes_the_right_bearer_token_and_refuses_a_wrong_one(bgd, tmp_path):
    server = BuildGrid(bgd, tmp_path / "bg", jwt_secret="jwt-signing-secret", instance="main")
    try:
        good = server.token()
        with connect(server.url, Credentials(token=good)) as c:
            fingerprint = os.urandom(32)
            ActionCache(c).store(fingerprint, [Output.symlink("out/l", "x")], 1.0, str)
            assert ActionCache(c).lookup(fingerprint) is not None
        wrong = server.token(secret="another-secret")
        for creds in (Credentials(token=wrong), Credentials()):
            with connect(server.url, creds) as c, pytest.raises(AuthFailed) as failed:
                c.get_action_result(action_digest(b"x"))
            assert "UNAUTHENTICATED" in str(failed.value) or "PERMISSION" in str(failed.value)
            assert wrong not in str(failed.value) and good not in str(failed.value)
    finally:
        server.stop()


def test_grpcs_with_a_ca_bundle_and_a_client_certificate(bgd, certificates, tmp_path):
    server = BuildGrid(bgd, tmp_path / "bg", tls=certificates, mutual=True)
    c = certificates
    try:
        mutual = Credentials(ca_file=str(c.ca_cert), client_cert=str(c.client_cert),
                             client_key=str(c.client_key))
        with connect(server.url, mutual) as client:
            assert client.name.startswith("grpcs://")
            assert m.SHA256 in client.capabilities().digest_functions
        for creds in (
            Credentials(ca_file=str(c.ca_cert)),  # no client certificate
            Credentials(ca_file=str(c.other_ca_cert), client_cert=str(c.client_cert),
                        client_key=str(c.client_key)),  # a server it does not trust
        ):
            with connect(server.url, creds, timeout=10.0) as client, pytest.raises(
                (RemoteError, deadline.DeadlineExceeded)
            ):
                client.capabilities()
    finally:
        server.stop()


def test_basic_auth_from_the_url_or_the_environment(nginx_path, tmp_path):
    needs_openssl()
    password = "pa55-w0rd-for-tests"
    server = Nginx(nginx_path, tmp_path / "nginx",
                   htpasswd=htpasswd(tmp_path / "htpasswd", "ci", password))
    try:
        data = unique("behind basic auth")
        host = server.url.removeprefix("http://")
        with connect(f"http://ci:{password}@{host}") as c:
            assert password not in c.name and "ci@" not in c.name
            c.upload([Blob(digest_of(data), data=data)])
        env = Credentials.from_env({"RUNNER_REMOTE_CACHE_PASSWORD": password}, username="ci")
        with connect(server.url, env) as c:
            assert c.find_missing([digest_of(data)]) == []
        for url in (f"http://ci:wrong-{password}@{host}", server.url):
            with connect(url) as c, pytest.raises(AuthFailed, match="HTTP 401") as failed:
                c.find_missing([digest_of(data)])
            assert password not in str(failed.value)
    finally:
        server.stop()


def test_a_bearer_token_over_http_and_no_token_in_any_message(nginx_path, tmp_path):
    server = Nginx(nginx_path, tmp_path / "nginx", bearer=TOKEN)
    try:
        data = unique("behind a token")
        with connect(server.url, Credentials(token=TOKEN)) as c:
            c.upload([Blob(digest_of(data), data=data)])
            assert c.find_missing([digest_of(data)]) == []
        with connect(server.url, Credentials(token="not-" + TOKEN)) as c, pytest.raises(
            AuthFailed
        ) as failed:
            c.get_action_result(action_digest(b"x"))
        assert TOKEN not in str(failed.value)
        with connect(server.url, Credentials(token=TOKEN)) as c:
            server.stop()  # a connection error's message, with the token set
            with pytest.raises(RemoteError) as failed:
                c.get_action_result(action_digest(b"x"))
        assert TOKEN not in str(failed.value) and TOKEN not in repr(failed.value)
    finally:
        server.stop()


def test_https_with_a_ca_bundle_and_a_client_certificate(nginx_path, certificates, tmp_path):
    server = Nginx(nginx_path, tmp_path / "nginx", tls=certificates, mutual=True)
    c = certificates
    try:
        mutual = Credentials(ca_file=str(c.ca_cert), client_cert=str(c.client_cert),
                             client_key=str(c.client_key))
        data = unique("over https")
        with connect(server.url, mutual) as client:
            client.upload([Blob(digest_of(data), data=data)])
            assert client.find_missing([digest_of(data)]) == []
        with connect(server.url, Credentials(ca_file=str(c.ca_cert))) as client, pytest.raises(
            RemoteError, match="HTTP 400"  # nginx: "No required SSL certificate was sent"
        ):
            client.find_missing([digest_of(data)])
        with connect(server.url, Credentials(ca_file=str(c.other_ca_cert))) as client, \
                pytest.raises(RemoteError, match="CERTIFICATE_VERIFY_FAILED"):
            client.find_missing([digest_of(data)])
    finally:
        server.stop()
