"""runner's cache entries as Remote Execution API action results, and back.

A task's outputs (runner.entries.Output) and duration are stored as an ActionResult:

    a file       OutputFile{path, digest: SHA-256 and size of its content,
                 is_executable: any x bit, node_properties: {unix_mode: its permission
                 bits, properties: [runner.blake3 = the hex BLAKE3 of its content]}}
    a symlink    OutputSymlink{path, target} in output_symlinks
    a directory  OutputDirectory{path, tree_digest}: the digest of a Tree whose root is
                 one empty Directory, node_properties.unix_mode its permission bits (the
                 Tree is a CAS blob, uploaded with the files)
    duration     execution_metadata: worker "runner", worker_start_timestamp and
                 worker_completed_timestamp that far apart, and the same as
                 virtual_execution_duration
    exit_code    0: runner stores successful runs only

Paths are relative to the project root, as runner keeps them. The BLAKE3 is the name
of the content in runner's local store: it lets a restore use a blob the store already
holds without downloading it, and it is checked like any digest there (the store
hashes what it ingests).

An action result read back is untrusted input. `from_action_result` only turns it into
Output records (or raises Malformed for one runner would not write: a failed action,
a digest that is not SHA-256, a non-empty directory, ...): the caller applies runner's
entry rule (runner.entries.refusal) to them before anything is fetched or restored.
Modes are kept as read (a setuid bit included), for that rule to refuse.
"""

from __future__ import annotations

import stat
import time

from ..entries import DIRECTORY, FILE, NO_DIGEST, SYMLINK, Output
from . import messages as m
from .client import Blob
from .digests import digest_of, is_valid
from .errors import Malformed
from .wire import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

BLAKE3_PROPERTY = "runner.blake3"
WORKER = "runner"
DEFAULT_FILE_MODE = {True: 0o755, False: 0o644}  # by is_executable, without unix_mode
DEFAULT_DIRECTORY_MODE = 0o755


class RemoteEntry:
    """An entry read from a remote cache: its outputs (not yet checked against the
    rule), the CAS digest of each file output's content by path, its duration."""

    __slots__ = ("outputs", "blobs", "duration")

    def __init__(self, outputs: list[Output], blobs: dict[str, m.Digest], duration: float) -> None:
        self.outputs = outputs
        self.blobs = blobs
        self.duration = duration

    def __repr__(self) -> str:
        return f"RemoteEntry({self.outputs!r}, duration={self.duration:g})"


# ---------------------------------------------------------------- writing


def to_action_result(
    outputs: Sequence[Output],
    sha256: Mapping[str, m.Digest],
    duration: float,
    now: float | None = None,
) -> tuple[m.ActionResult, list[Blob]]:
    """The action result of a run's outputs (`sha256`: each file output's CAS digest,
    by path), and the Tree blobs it names, to upload with the files."""
    files, links, dirs, trees = [], [], [], []
    for o in outputs:
        if o.kind == SYMLINK:
            links.append(m.OutputSymlink(path=o.path, target=o.target))
        elif o.kind == DIRECTORY:
            tree = empty_tree(stat.S_IMODE(o.mode)).encode()
            blob = Blob(digest_of(tree), data=tree)
            trees.append(blob)
            dirs.append(m.OutputDirectory(path=o.path, tree_digest=blob.digest))
        else:
            files.append(_output_file(o, sha256[o.path]))
    return (
        m.ActionResult(
            output_files=files,
            output_directories=dirs,
            output_symlinks=links,
            exit_code=0,
            execution_metadata=_metadata(duration, time.time() if now is None else now),
        ),
        trees,
    )


def empty_tree(mode: int) -> m.Tree:
    """The Tree of an empty directory with these permission bits."""
    return m.Tree(root=m.Directory(node_properties=_mode(mode)))


def _output_file(o: Output, d: m.Digest) -> m.OutputFile:
    mode = stat.S_IMODE(o.mode)
    props = _mode(mode)
    blake3 = m.NodeProperty(name=BLAKE3_PROPERTY, value=o.digest.hex())
    return m.OutputFile(
        path=o.path,
        digest=d,
        is_executable=bool(mode & 0o111),
        node_properties=m.NodeProperties(properties=[blake3], unix_mode=props.unix_mode),
    )


def _mode(mode: int) -> m.NodeProperties:
    return m.NodeProperties(unix_mode=m.UInt32Value(value=mode))


def _metadata(duration: float, now: float) -> m.ExecutedActionMetadata:
    duration = max(0.0, duration)
    return m.ExecutedActionMetadata(
        worker=WORKER,
        worker_start_timestamp=_timestamp(now - duration),
        worker_completed_timestamp=_timestamp(now),
        virtual_execution_duration=m.Duration(**_split(duration)),
    )


def _timestamp(t: float) -> m.Timestamp:
    return m.Timestamp(**_split(t))


def _split(t: float) -> dict[str, int]:
    ns = round(t * 1e9)
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}


# ---------------------------------------------------------------- reading


def from_action_result(
    result: m.ActionResult, read_tree: Callable[[m.Digest], bytes | None]
) -> RemoteEntry | None:
    """The entry an action result holds; None if a Tree it names is not on the server
    (`read_tree` fetches one, checked against its digest). Malformed if it is not an
    action result runner writes."""
    if result.exit_code != 0:
        raise Malformed(f"the result of a failed action (exit code {result.exit_code})")
    outputs: list[Output] = []
    blobs: dict[str, m.Digest] = {}
    for f in result.output_files:
        o, blobs[f.path] = _file(f)
        outputs.append(o)
    outputs += _symlinks(result)
    for d in result.output_directories:
        if not is_valid(d.tree_digest):
            raise Malformed(f"directory {d.path!r} without a valid tree digest")
        assert d.tree_digest is not None
        raw = read_tree(d.tree_digest)
        if raw is None:
            return None
        outputs.append(Output(d.path, NO_DIGEST, DIRECTORY | _empty_tree_mode(d.path, raw), 0))
    return RemoteEntry(outputs, blobs, duration_of(result.execution_metadata))


def _file(f: m.OutputFile) -> tuple[Output, m.Digest]:
    if not is_valid(f.digest):
        raise Malformed(f"file {f.path!r} without a valid SHA-256 digest")
    assert f.digest is not None
    props = f.node_properties or m.NodeProperties()
    blake3 = [p.value for p in props.properties if p.name == BLAKE3_PROPERTY]
    if len(blake3) != 1 or not _is_hex(blake3[0], 64):
        raise Malformed(f"file {f.path!r} without its {BLAKE3_PROPERTY}")
    if props.unix_mode is not None:
        mode = props.unix_mode.value
        if mode & ~0o7777:
            raise Malformed(f"file {f.path!r} with unix_mode {oct(mode)}")
    else:
        mode = DEFAULT_FILE_MODE[f.is_executable]
    return Output(f.path, bytes.fromhex(blake3[0]), FILE | mode, f.digest.size_bytes), f.digest


def _symlinks(result: m.ActionResult) -> list[Output]:
    """Symlinks from output_symlinks and the two lists it replaced (REAPI 2.1), each
    once: a server may fill in the old lists from the new one."""
    found: dict[str, str] = {}
    for s in (
        *result.output_symlinks,
        *result.output_file_symlinks,
        *result.output_directory_symlinks,
    ):
        if found.setdefault(s.path, s.target) != s.target:
            raise Malformed(f"symlink {s.path!r} listed with two targets")
    return [Output.symlink(path, target) for path, target in found.items()]


def _empty_tree_mode(path: str, raw: bytes) -> int:
    """The permission bits of the empty directory a Tree holds; Malformed if it is not
    the Tree of one empty directory (runner restores no directory with content)."""
    try:
        tree = m.Tree.decode(raw)
    except DecodeError as e:
        raise Malformed(f"directory {path!r}: its tree does not decode ({e})") from None
    root = tree.root
    if root is None or root.files or root.directories or root.symlinks or tree.children:
        raise Malformed(f"directory {path!r} is not empty")
    unix_mode = root.node_properties.unix_mode if root.node_properties else None
    mode = DEFAULT_DIRECTORY_MODE if unix_mode is None else unix_mode.value
    if mode & ~0o7777:
        raise Malformed(f"directory {path!r} with unix_mode {oct(mode)}")
    return mode


def duration_of(meta: m.ExecutedActionMetadata | None) -> float:
    """How long the action ran: its virtual_execution_duration, or the time between
    its worker's start and completion; 0 when it says neither."""
    if meta is None:
        return 0.0
    if meta.virtual_execution_duration is not None:
        d = meta.virtual_execution_duration
        return max(0.0, d.seconds + d.nanos / 1e9)
    start, end = meta.worker_start_timestamp, meta.worker_completed_timestamp
    if start is None or end is None:
        return 0.0
    return max(0.0, (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9)


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
