"""The messages of the Remote Execution API v2 that a cache client exchanges, with the
field numbers of the published .proto files (the numbers are the protocol; the names
are those of the files, so that a reader can check one against the other):

    build/bazel/remote/execution/v2/remote_execution.proto   build.bazel.remote.execution.v2
    google/bytestream/bytestream.proto                         google.bytestream
    google/rpc/status.proto                                    google.rpc
    google/protobuf/{timestamp,duration,wrappers,any}.proto    google.protobuf

A subset: the fields runner reads or writes. A field left out here is skipped when
read (as any proto3 reader skips a field it does not know), so a server's newer or
optional fields do no harm; runner never re-sends a message it read.
"""

from __future__ import annotations

from .wire import BOOL, BYTES, ENUM, INT32, INT64, MESSAGE, STRING, UINT32, Field, Message

REAPI = "build.bazel.remote.execution.v2"
BYTESTREAM = "google.bytestream.ByteStream"

# DigestFunction.Value
SHA256 = 1


class Timestamp(Message):
    __slots__ = ("seconds", "nanos")
    FIELDS = (Field(1, "seconds", INT64), Field(2, "nanos", INT32))
    seconds: int
    nanos: int


class Duration(Message):
    __slots__ = ("seconds", "nanos")
    FIELDS = (Field(1, "seconds", INT64), Field(2, "nanos", INT32))
    seconds: int
    nanos: int


class UInt32Value(Message):
    __slots__ = ("value",)
    FIELDS = (Field(1, "value", UINT32),)
    value: int


class AnyMessage(Message):
    """google.protobuf.Any, as google.rpc.Status carries its details."""

    __slots__ = ("type_url", "value")
    FIELDS = (Field(1, "type_url", STRING), Field(2, "value", BYTES))
    type_url: str
    value: bytes


class Status(Message):
    """google.rpc.Status: a gRPC status code, 0 for OK."""

    __slots__ = ("code", "message", "details")
    FIELDS = (
        Field(1, "code", INT32),
        Field(2, "message", STRING),
        Field(3, "details", MESSAGE, AnyMessage, repeated=True),
    )
    code: int
    message: str
    details: tuple[AnyMessage, ...]


class Digest(Message):
    __slots__ = ("hash", "size_bytes")
    FIELDS = (Field(1, "hash", STRING), Field(2, "size_bytes", INT64))
    hash: str
    size_bytes: int


class NodeProperty(Message):
    __slots__ = ("name", "value")
    FIELDS = (Field(1, "name", STRING), Field(2, "value", STRING))
    name: str
    value: str


class NodeProperties(Message):
    """Optional facts about a file or directory: runner keeps its permission bits in
    `unix_mode` (REAPI's is_executable alone would lose 0o600 and the like)."""

    __slots__ = ("properties", "mtime", "unix_mode")
    FIELDS = (
        Field(1, "properties", MESSAGE, NodeProperty, repeated=True),
        Field(2, "mtime", MESSAGE, Timestamp),
        Field(3, "unix_mode", MESSAGE, UInt32Value),
    )
    properties: tuple[NodeProperty, ...]
    mtime: Timestamp | None
    unix_mode: UInt32Value | None


class FileNode(Message):
    __slots__ = ("name", "digest", "is_executable", "node_properties")
    FIELDS = (
        Field(1, "name", STRING),
        Field(2, "digest", MESSAGE, Digest),
        Field(4, "is_executable", BOOL),
        Field(6, "node_properties", MESSAGE, NodeProperties),
    )
    name: str
    digest: Digest | None
    is_executable: bool
    node_properties: NodeProperties | None


class DirectoryNode(Message):
    __slots__ = ("name", "digest")
    FIELDS = (Field(1, "name", STRING), Field(2, "digest", MESSAGE, Digest))
    name: str
    digest: Digest | None


class SymlinkNode(Message):
    __slots__ = ("name", "target")
    FIELDS = (Field(1, "name", STRING), Field(2, "target", STRING))
    name: str
    target: str


class Directory(Message):
    __slots__ = ("files", "directories", "symlinks", "node_properties")
    FIELDS = (
        Field(1, "files", MESSAGE, FileNode, repeated=True),
        Field(2, "directories", MESSAGE, DirectoryNode, repeated=True),
        Field(3, "symlinks", MESSAGE, SymlinkNode, repeated=True),
        Field(5, "node_properties", MESSAGE, NodeProperties),
    )
    files: tuple[FileNode, ...]
    directories: tuple[DirectoryNode, ...]
    symlinks: tuple[SymlinkNode, ...]
    node_properties: NodeProperties | None


class Tree(Message):
    __slots__ = ("root", "children")
    FIELDS = (
        Field(1, "root", MESSAGE, Directory),
        Field(2, "children", MESSAGE, Directory, repeated=True),
    )
    root: Directory | None
    children: tuple[Directory, ...]


class OutputFile(Message):
    __slots__ = ("path", "digest", "is_executable", "node_properties")
    FIELDS = (
        Field(1, "path", STRING),
        Field(2, "digest", MESSAGE, Digest),
        Field(4, "is_executable", BOOL),
        Field(7, "node_properties", MESSAGE, NodeProperties),
    )
    path: str
    digest: Digest | None
    is_executable: bool
    node_properties: NodeProperties | None


class OutputSymlink(Message):
    __slots__ = ("path", "target")
    FIELDS = (Field(1, "path", STRING), Field(2, "target", STRING))
    path: str
    target: str


class OutputDirectory(Message):
    __slots__ = ("path", "tree_digest")
    FIELDS = (Field(1, "path", STRING), Field(3, "tree_digest", MESSAGE, Digest))
    path: str
    tree_digest: Digest | None


class ExecutedActionMetadata(Message):
    __slots__ = (
        "worker",
        "worker_start_timestamp",
        "worker_completed_timestamp",
        "virtual_execution_duration",
    )
    FIELDS = (
        Field(1, "worker", STRING),
        Field(3, "worker_start_timestamp", MESSAGE, Timestamp),
        Field(4, "worker_completed_timestamp", MESSAGE, Timestamp),
        Field(12, "virtual_execution_duration", MESSAGE, Duration),
    )
    worker: str
    worker_start_timestamp: Timestamp | None
    worker_completed_timestamp: Timestamp | None
    virtual_execution_duration: Duration | None


class ActionResult(Message):
    __slots__ = (
        "output_files",
        "output_directories",
        "exit_code",
        "execution_metadata",
        "output_file_symlinks",
        "output_directory_symlinks",
        "output_symlinks",
    )
    FIELDS = (
        Field(2, "output_files", MESSAGE, OutputFile, repeated=True),
        Field(3, "output_directories", MESSAGE, OutputDirectory, repeated=True),
        Field(4, "exit_code", INT32),
        Field(9, "execution_metadata", MESSAGE, ExecutedActionMetadata),
        Field(10, "output_file_symlinks", MESSAGE, OutputSymlink, repeated=True),
        Field(11, "output_directory_symlinks", MESSAGE, OutputSymlink, repeated=True),
        Field(12, "output_symlinks", MESSAGE, OutputSymlink, repeated=True),
    )
    output_files: tuple[OutputFile, ...]
    output_directories: tuple[OutputDirectory, ...]
    exit_code: int
    execution_metadata: ExecutedActionMetadata | None
    output_file_symlinks: tuple[OutputSymlink, ...]
    output_directory_symlinks: tuple[OutputSymlink, ...]
    output_symlinks: tuple[OutputSymlink, ...]


# ---------------------------------------------------------------- the services' requests


class GetCapabilitiesRequest(Message):
    __slots__ = ("instance_name",)
    FIELDS = (Field(1, "instance_name", STRING),)
    instance_name: str


class ActionCacheUpdateCapabilities(Message):
    __slots__ = ("update_enabled",)
    FIELDS = (Field(1, "update_enabled", BOOL),)
    update_enabled: bool


class CacheCapabilities(Message):
    __slots__ = (
        "digest_functions",
        "action_cache_update_capabilities",
        "max_batch_total_size_bytes",
    )
    FIELDS = (
        Field(1, "digest_functions", ENUM, repeated=True),
        Field(2, "action_cache_update_capabilities", MESSAGE, ActionCacheUpdateCapabilities),
        Field(4, "max_batch_total_size_bytes", INT64),
    )
    digest_functions: tuple[int, ...]
    action_cache_update_capabilities: ActionCacheUpdateCapabilities | None
    max_batch_total_size_bytes: int


class ServerCapabilities(Message):
    __slots__ = ("cache_capabilities",)
    FIELDS = (Field(1, "cache_capabilities", MESSAGE, CacheCapabilities),)
    cache_capabilities: CacheCapabilities | None


class GetActionResultRequest(Message):
    __slots__ = ("instance_name", "action_digest", "digest_function")
    FIELDS = (
        Field(1, "instance_name", STRING),
        Field(2, "action_digest", MESSAGE, Digest),
        Field(6, "digest_function", ENUM),
    )
    instance_name: str
    action_digest: Digest | None
    digest_function: int


class UpdateActionResultRequest(Message):
    __slots__ = ("instance_name", "action_digest", "action_result", "digest_function")
    FIELDS = (
        Field(1, "instance_name", STRING),
        Field(2, "action_digest", MESSAGE, Digest),
        Field(3, "action_result", MESSAGE, ActionResult),
        Field(5, "digest_function", ENUM),
    )
    instance_name: str
    action_digest: Digest | None
    action_result: ActionResult | None
    digest_function: int


class FindMissingBlobsRequest(Message):
    __slots__ = ("instance_name", "blob_digests", "digest_function")
    FIELDS = (
        Field(1, "instance_name", STRING),
        Field(2, "blob_digests", MESSAGE, Digest, repeated=True),
        Field(3, "digest_function", ENUM),
    )
    instance_name: str
    blob_digests: tuple[Digest, ...]
    digest_function: int


class FindMissingBlobsResponse(Message):
    __slots__ = ("missing_blob_digests",)
    FIELDS = (Field(2, "missing_blob_digests", MESSAGE, Digest, repeated=True),)
    missing_blob_digests: tuple[Digest, ...]


class BatchUpdateRequest(Message):
    """BatchUpdateBlobsRequest.Request: one blob."""

    __slots__ = ("digest", "data")
    FIELDS = (Field(1, "digest", MESSAGE, Digest), Field(2, "data", BYTES))
    digest: Digest | None
    data: bytes


class BatchUpdateBlobsRequest(Message):
    __slots__ = ("instance_name", "requests", "digest_function")
    FIELDS = (
        Field(1, "instance_name", STRING),
        Field(2, "requests", MESSAGE, BatchUpdateRequest, repeated=True),
        Field(5, "digest_function", ENUM),
    )
    instance_name: str
    requests: tuple[BatchUpdateRequest, ...]
    digest_function: int


class BatchUpdateResponse(Message):
    """BatchUpdateBlobsResponse.Response: how storing one blob went."""

    __slots__ = ("digest", "status")
    FIELDS = (Field(1, "digest", MESSAGE, Digest), Field(2, "status", MESSAGE, Status))
    digest: Digest | None
    status: Status | None


class BatchUpdateBlobsResponse(Message):
    __slots__ = ("responses",)
    FIELDS = (Field(1, "responses", MESSAGE, BatchUpdateResponse, repeated=True),)
    responses: tuple[BatchUpdateResponse, ...]


class BatchReadBlobsRequest(Message):
    __slots__ = ("instance_name", "digests", "digest_function")
    FIELDS = (
        Field(1, "instance_name", STRING),
        Field(2, "digests", MESSAGE, Digest, repeated=True),
        Field(4, "digest_function", ENUM),
    )
    instance_name: str
    digests: tuple[Digest, ...]
    digest_function: int


class BatchReadResponse(Message):
    """BatchReadBlobsResponse.Response: one blob, or why not."""

    __slots__ = ("digest", "data", "status")
    FIELDS = (
        Field(1, "digest", MESSAGE, Digest),
        Field(2, "data", BYTES),
        Field(3, "status", MESSAGE, Status),
    )
    digest: Digest | None
    data: bytes
    status: Status | None


class BatchReadBlobsResponse(Message):
    __slots__ = ("responses",)
    FIELDS = (Field(1, "responses", MESSAGE, BatchReadResponse, repeated=True),)
    responses: tuple[BatchReadResponse, ...]


class ReadRequest(Message):
    __slots__ = ("resource_name", "read_offset", "read_limit")
    FIELDS = (
        Field(1, "resource_name", STRING),
        Field(2, "read_offset", INT64),
        Field(3, "read_limit", INT64),
    )
    resource_name: str
    read_offset: int
    read_limit: int


class ReadResponse(Message):
    __slots__ = ("data",)
    FIELDS = (Field(10, "data", BYTES),)
    data: bytes


class WriteRequest(Message):
    __slots__ = ("resource_name", "write_offset", "finish_write", "data")
    FIELDS = (
        Field(1, "resource_name", STRING),
        Field(2, "write_offset", INT64),
        Field(3, "finish_write", BOOL),
        Field(10, "data", BYTES),
    )
    resource_name: str
    write_offset: int
    finish_write: bool
    data: bytes


class WriteResponse(Message):
    __slots__ = ("committed_size",)
    FIELDS = (Field(1, "committed_size", INT64),)
    committed_size: int


def method(service: str, name: str) -> str:
    """A gRPC method's path: /build.bazel.remote.execution.v2.ActionCache/GetActionResult."""
    return f"/{service}/{name}"
