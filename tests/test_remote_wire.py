"""The remote cache protocols' messages, keys and conversions, without a server.

The messages are checked against the reference: BuildGrid's protobuf classes, generated
from the published .proto files, run in BuildGrid's own venv (tests/remote_servers.py).
Every field runner defines has the reference's number, name and type; what runner
encodes, protobuf parses and serializes back to the same bytes; what protobuf encodes
(fields runner does not know included), runner decodes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from conftest import clean_env
from hypothesis import given
from hypothesis import strategies as st
from remote_servers import buildgrid_python, ensure_buildgrid

from runner.entries import DIRECTORY, FILE, Output, refusal
from runner.fingerprint import digest as blake3
from runner.remote_protocols import Credentials, connect
from runner.remote_protocols import messages as m
from runner.remote_protocols.conversion import (
    BLAKE3_PROPERTY,
    from_action_result,
    to_action_result,
)
from runner.remote_protocols.digests import action_digest, digest_of
from runner.remote_protocols.errors import BadURL, Malformed
from runner.remote_protocols.wire import (
    BOOL,
    BYTES,
    ENUM,
    INT32,
    INT64,
    MESSAGE,
    STRING,
    UINT32,
    DecodeError,
    Message,
)

V2 = "build.bazel.remote.execution.v2"
FULL_NAMES = {
    m.Timestamp: "google.protobuf.Timestamp",
    m.Duration: "google.protobuf.Duration",
    m.UInt32Value: "google.protobuf.UInt32Value",
    m.AnyMessage: "google.protobuf.Any",
    m.Status: "google.rpc.Status",
    m.BatchUpdateRequest: f"{V2}.BatchUpdateBlobsRequest.Request",
    m.BatchUpdateResponse: f"{V2}.BatchUpdateBlobsResponse.Response",
    m.BatchReadResponse: f"{V2}.BatchReadBlobsResponse.Response",
    **{
        getattr(m, name): f"google.bytestream.{name}"
        for name in ("ReadRequest", "ReadResponse", "WriteRequest", "WriteResponse")
    },
}
MESSAGES = [v for v in vars(m).values()
            if isinstance(v, type) and issubclass(v, Message) and v is not Message]
# protobuf's FieldDescriptor types of runner's kinds
PROTOBUF_TYPE = {STRING: 9, BYTES: 12, INT64: 3, INT32: 5, UINT32: 13, BOOL: 8, ENUM: 14,
                 MESSAGE: 11}

REFERENCE = r"""
import json, sys
from google.protobuf import descriptor_pool, symbol_database
from google.protobuf import any_pb2, duration_pb2, timestamp_pb2, wrappers_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2
from buildgrid._protos.google.bytestream import bytestream_pb2
from buildgrid._protos.google.rpc import status_pb2
from google.protobuf import message_factory

pool = descriptor_pool.Default()
asked = json.load(sys.stdin)
out = {"fields": {}, "reencoded": {}, "encoded": {}}
for name in asked["names"]:
    d = pool.FindMessageTypeByName(name)
    out["fields"][name] = {
        f.name: [f.number, f.type, f.is_repeated if hasattr(f, "is_repeated")
                 else f.label == 3, f.message_type.full_name if f.message_type else None]
        for f in d.fields}
for name, hexed in asked["encoded"].items():
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    out["reencoded"][name] = cls.FromString(bytes.fromhex(hexed)).SerializeToString().hex()

# An ActionResult as a server writes it, with fields runner does not read.
ar = remote_execution_pb2.ActionResult()
f = ar.output_files.add(path="out/a", is_executable=True, contents=b"inline")
f.digest.hash, f.digest.size_bytes = "ab" * 32, 6
f.node_properties.mtime.seconds = 1700000000
f.node_properties.unix_mode.value = 0o755
f.node_properties.properties.add(name="runner.blake3", value="cd" * 32)
ar.output_symlinks.add(path="out/l", target="a")
ar.exit_code = 0
ar.stdout_raw = b"printed"
ar.execution_metadata.worker = "w"
ar.execution_metadata.worker_start_timestamp.seconds = 100
ar.execution_metadata.worker_completed_timestamp.seconds = 103
ar.execution_metadata.worker_completed_timestamp.nanos = 500000000
ar.execution_metadata.queued_timestamp.seconds = 99
out["encoded"]["ActionResult"] = ar.SerializeToString().hex()
caps = remote_execution_pb2.ServerCapabilities()
caps.cache_capabilities.digest_functions.extend([1, 9])  # packed, as proto3 sends it
caps.cache_capabilities.max_batch_total_size_bytes = 4 << 20
caps.cache_capabilities.action_cache_update_capabilities.update_enabled = True
caps.cache_capabilities.symlink_absolute_path_strategy = 1
caps.low_api_version.major = 2
out["encoded"]["ServerCapabilities"] = caps.SerializeToString().hex()
json.dump(out, sys.stdout)
"""


def full_name(cls: type[Message]) -> str:
    return FULL_NAMES.get(cls, f"{V2}.{cls.__name__}")


def samples() -> dict[str, Message]:
    """One of most messages, with fields set (negative numbers and packed lists too)."""
    d = digest_of(b"sample")
    props = m.NodeProperties(properties=[m.NodeProperty(name="k", value="v")],
                             unix_mode=m.UInt32Value(value=0o4755))
    return {
        "ActionResult": m.ActionResult(
            output_files=[m.OutputFile(path="ü/a", digest=d, is_executable=True,
                                       node_properties=props)],
            output_directories=[m.OutputDirectory(path="d", tree_digest=d)],
            exit_code=-3,
            execution_metadata=m.ExecutedActionMetadata(
                worker="runner", worker_start_timestamp=m.Timestamp(seconds=-5, nanos=7),
                virtual_execution_duration=m.Duration(seconds=2, nanos=-1)),
            output_symlinks=[m.OutputSymlink(path="l", target="../x")],
            output_file_symlinks=[m.OutputSymlink(path="l", target="../x")],
        ),
        "Tree": m.Tree(root=m.Directory(node_properties=props),
                       children=[m.Directory(files=[m.FileNode(name="f", digest=d)])]),
        "ServerCapabilities": m.ServerCapabilities(cache_capabilities=m.CacheCapabilities(
            digest_functions=[1, 2, 9], max_batch_total_size_bytes=1 << 40)),
        "BatchUpdateBlobsRequest": m.BatchUpdateBlobsRequest(
            instance_name="main", requests=[m.BatchUpdateRequest(digest=d, data=b"\0\1")],
            digest_function=1),
        "BatchReadBlobsResponse": m.BatchReadBlobsResponse(responses=[
            m.BatchReadResponse(digest=d, status=m.Status(code=5, message="not found"))]),
        "WriteRequest": m.WriteRequest(resource_name="uploads/u/blobs/h/1", write_offset=1 << 33,
                                       finish_write=True, data=b"x"),
        "FindMissingBlobsRequest": m.FindMissingBlobsRequest(blob_digests=[d, d]),
    }


@pytest.fixture(scope="module")
def reference():
    bgd = ensure_buildgrid()
    if isinstance(bgd, str):
        pytest.skip(bgd)
    asked = {
        "names": [full_name(cls) for cls in MESSAGES],
        "encoded": {full_name(type(msg)): msg.encode().hex() for msg in samples().values()},
    }
    proc = subprocess.run([str(buildgrid_python(bgd)), "-c", REFERENCE], input=json.dumps(asked),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_field_has_the_reference_number_name_and_type(reference):
    assert len(MESSAGES) > 30
    for cls in MESSAGES:
        theirs = reference["fields"][full_name(cls)]
        for f in cls.FIELDS:
            assert f.name in theirs, f"{cls.__name__}.{f.name}"
            number, kind, repeated, message = theirs[f.name]
            assert (f.number, PROTOBUF_TYPE[f.kind], f.repeated) == (number, kind, repeated), (
                f"{cls.__name__}.{f.name}")
            if f.message is not None:
                assert full_name(f.message) == message, f"{cls.__name__}.{f.name}"


def test_protobuf_reads_what_runner_writes_byte_for_byte(reference):
    for name, msg in samples().items():
        assert reference["reencoded"][full_name(type(msg))] == msg.encode().hex(), name


def test_runner_reads_what_protobuf_writes_skipping_fields_it_does_not_know(reference):
    ar = m.ActionResult.decode(bytes.fromhex(reference["encoded"]["ActionResult"]))
    (f,) = ar.output_files
    assert (f.path, f.digest, f.is_executable) == ("out/a", m.Digest(hash="ab" * 32, size_bytes=6),
                                                   True)
    assert f.node_properties.unix_mode.value == 0o755
    entry = from_action_result(ar, lambda d: None)
    assert [o.row() for o in entry.outputs] == [
        ("out/a", bytes.fromhex("cd" * 32), FILE | 0o755, 6, ""),
        Output.symlink("out/l", "a").row(),
    ]
    assert entry.duration == pytest.approx(3.5)  # from the worker's timestamps
    caps = m.ServerCapabilities.decode(bytes.fromhex(reference["encoded"]["ServerCapabilities"]))
    assert caps.cache_capabilities.digest_functions == (1, 9)
    assert caps.cache_capabilities.max_batch_total_size_bytes == 4 << 20
    assert caps.cache_capabilities.action_cache_update_capabilities.update_enabled


# ---------------------------------------------------------------- the codec alone


@given(st.text(), st.integers(-(1 << 63), (1 << 63) - 1))
def test_a_digest_reads_back_as_written(text, size):
    d = m.Digest(hash=text, size_bytes=size)
    assert m.Digest.decode(d.encode()) == d


@given(st.lists(st.integers(-(1 << 31), (1 << 31) - 1)), st.integers(-(1 << 31), (1 << 31) - 1))
def test_numbers_read_back_as_written(functions, code):
    caps = m.CacheCapabilities(digest_functions=functions)
    assert m.CacheCapabilities.decode(caps.encode()).digest_functions == tuple(functions)
    assert m.ActionResult.decode(m.ActionResult(exit_code=code).encode()).exit_code == code


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_message_or_a_decode_error(data):
    for cls in (m.ActionResult, m.Tree, m.ServerCapabilities, m.BatchReadBlobsResponse):
        try:
            cls.decode(data)
        except DecodeError:
            pass


@pytest.mark.parametrize("data", [
    b"\x12",                      # a field without its length
    b"\x12\x05ab",                # a length past the end
    b"\x20" + b"\xff" * 11,       # a number longer than ten bytes
    b"\x12\x02\x0a\x80",          # a message inside that is cut short
    b"\x0b",                      # a group, which proto3 has not
    b"\x22\x01a",                 # exit_code as bytes
    b"\x12\x04\x0a\x02\xff\xfe",  # a path that is not UTF-8
])
def test_damaged_bytes_are_a_decode_error(data):
    with pytest.raises(DecodeError):
        m.ActionResult.decode(data)


# ---------------------------------------------------------------- keys


def test_the_action_key_is_the_digest_of_the_format_string_and_the_fingerprint():
    fingerprint = bytes(range(32))
    preimage = b"runner-action-v1\0" + fingerprint
    assert action_digest(fingerprint) == m.Digest(
        hash=hashlib.sha256(preimage).hexdigest(), size_bytes=len(preimage))
    assert action_digest(fingerprint) != action_digest(bytes(32))


# ---------------------------------------------------------------- conversion


CONTENT = {"out/bin/tool": b"tool", "out/private": b"key"}


def outputs_of_every_kind() -> list[Output]:
    return [
        Output.file("out/bin/tool", blake3(b"tool"), 0o755, 4),
        Output.file("out/private", blake3(b"key"), 0o600, 3),
        Output.symlink("out/current", "bin/tool"),
        Output.directory("out/cache", 0o700),
    ]


def converted(outputs: list[Output], duration: float = 1.0):
    sha = {o.path: digest_of(CONTENT.get(o.path, b"x")) for o in outputs if o.kind == FILE}
    result, trees = to_action_result(outputs, sha, duration, now=1_700_000_000.5)
    by_digest = {t.digest: t.data for t in trees}
    return m.ActionResult.decode(result.encode()), by_digest.get, sha


def test_outputs_convert_to_an_action_result_and_back():
    outputs = outputs_of_every_kind()
    result, trees, sha = converted(outputs, duration=12.75)
    f = result.output_files[0]
    assert f.is_executable and f.node_properties.unix_mode.value == 0o755
    assert [(p.name, p.value) for p in f.node_properties.properties] == [
        (BLAKE3_PROPERTY, blake3(b"tool").hex())]
    assert not result.output_files[1].is_executable
    meta = result.execution_metadata
    assert meta.worker_completed_timestamp.seconds - meta.worker_start_timestamp.seconds in (12, 13)
    entry = from_action_result(result, trees)
    assert [o.row() for o in entry.outputs] == [o.row() for o in outputs]
    assert entry.blobs == sha
    assert entry.duration == pytest.approx(12.75)


def test_read_back_modes_are_kept_for_the_rule_to_refuse():
    outputs = [Output(path="out/tool", digest=blake3(b"x"), mode=FILE | 0o6755, size=1),
               Output(path="out/d", digest=bytes(32), mode=DIRECTORY | 0o1777, size=0)]
    result, trees, _ = converted(outputs)
    entry = from_action_result(result, trees)
    assert [o.mode for o in entry.outputs] == [FILE | 0o6755, DIRECTORY | 0o1777]
    assert "more than permission bits" in refusal(entry.outputs, ["out/**"], "/nonexistent")


def test_paths_are_handed_over_as_they_are_for_the_rule_to_refuse(tmp_path):
    d = digest_of(b"x")
    props = m.NodeProperties(properties=[m.NodeProperty(name=BLAKE3_PROPERTY, value="00" * 32)])
    result = m.ActionResult(output_files=[
        m.OutputFile(path="../outside", digest=d, node_properties=props)])
    entry = from_action_result(result, lambda d: None)
    assert entry.outputs[0].path == "../outside"
    assert "leaves the project" in refusal(entry.outputs, ["**"], str(tmp_path))


def test_an_output_file_without_unix_mode_gets_bazels_modes():
    d = digest_of(b"x")
    props = m.NodeProperties(properties=[m.NodeProperty(name=BLAKE3_PROPERTY, value="00" * 32)])
    result = m.ActionResult(output_files=[
        m.OutputFile(path="a", digest=d, is_executable=True, node_properties=props),
        m.OutputFile(path="b", digest=d, node_properties=props)])
    entry = from_action_result(result, lambda d: None)
    assert [o.mode for o in entry.outputs] == [FILE | 0o755, FILE | 0o644]


@pytest.mark.parametrize("result, why", [
    (m.ActionResult(exit_code=2), "failed action"),
    (m.ActionResult(output_files=[m.OutputFile(path="a", digest=digest_of(b"x"))]),
     BLAKE3_PROPERTY),
    (m.ActionResult(output_files=[
        m.OutputFile(path="a", digest=m.Digest(hash="XY", size_bytes=1))]), "valid SHA-256"),
    (m.ActionResult(output_files=[m.OutputFile(
        path="a", digest=digest_of(b"x"), node_properties=m.NodeProperties(
            properties=[m.NodeProperty(name=BLAKE3_PROPERTY, value="00" * 32)],
            unix_mode=m.UInt32Value(value=0o170755)))]), "unix_mode"),
    (m.ActionResult(output_symlinks=[m.OutputSymlink(path="l", target="a")],
                    output_file_symlinks=[m.OutputSymlink(path="l", target="b")]), "two targets"),
    (m.ActionResult(output_directories=[m.OutputDirectory(path="d")]), "tree digest"),
])
def test_an_action_result_runner_would_not_write_is_malformed(result, why):
    with pytest.raises(Malformed, match=why):
        from_action_result(result, lambda d: b"")


def test_a_symlink_in_the_old_and_new_lists_is_one_output():
    link = m.OutputSymlink(path="l", target="a")
    result = m.ActionResult(output_symlinks=[link], output_file_symlinks=[link])
    assert [o.row() for o in from_action_result(result, lambda d: None).outputs] == [
        Output.symlink("l", "a").row()]


# ---------------------------------------------------------------- credentials and URLs


def test_credentials_never_show_their_secrets():
    c = Credentials(token="tok-123", ca_file="/ca.pem")
    assert "tok-123" not in repr(c) and "token" in repr(c)
    assert c.redact("Bearer tok-123 refused") == "Bearer *** refused"


@pytest.mark.parametrize("make, why", [
    (lambda: Credentials(token="t", username="u", password="p"), "both a bearer token"),
    (lambda: Credentials(client_cert="/c.pem"), "needs its key"),
    (lambda: connect("grpc://u:p@host:1"), "RUNNER_REMOTE_CACHE_TOKEN"),
    (lambda: connect("grpc://host"), "grpc\\(s\\)://host:port"),
    (lambda: connect("grpc://host:1", Credentials(username="u", password="p")), "bearer token"),
    (lambda: connect("http://host:port/x"), "not a number"),
    (lambda: connect("ftp://host/x"), "expected one of"),
])
def test_unusable_settings_are_refused_with_a_reason(make, why):
    with pytest.raises(BadURL, match=why):
        make()


def test_the_grpc_url_names_its_instance():
    with connect("grpc://127.0.0.1:1/main/linux") as c:
        assert (c.target, c.instance, c.name) == ("127.0.0.1:1", "main/linux",
                                                  "grpc://127.0.0.1:1/main/linux")


IMPORTS = """
import json, sys
from runner.remote_protocols import connect
from runner.remote_protocols.cache import ActionCache
ActionCache(connect(sys.argv[1]))
json.dump(sorted(sys.modules), sys.stdout)
"""


@pytest.mark.parametrize("url, grpc_loaded", [("http://127.0.0.1:1/cache", False),
                                              ("grpc://127.0.0.1:1", True)])
def test_grpcio_is_imported_for_a_grpc_url_only_and_protobuf_never(url, grpc_loaded):
    proc = subprocess.run([sys.executable, "-c", IMPORTS, url], env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert ("grpc" in modules) == grpc_loaded
    assert not [name for name in modules if name.startswith("google.protobuf")]
