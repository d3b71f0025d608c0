"""runner's cache entries on a Remote Execution API cache, over any protocol client:
what the planner asks a remote (`lookup`, `fetch`) and tells it (`store`).

    entry = cache.lookup(fingerprint)          # RemoteEntry | None
    ... runner.entries.refusal(entry.outputs, ...) is None ...
    cache.fetch(entry, output, into=tmp_path)  # the file's content at tmp_path, checked
    cache.store(fingerprint, outputs, duration, blob_path)

Keys and digests: runner.remote_protocols.digests; the form of an entry:
runner.remote_protocols.conversion.
"""

from __future__ import annotations

from .client import Blob
from .conversion import from_action_result, to_action_result
from .digests import action_digest, file_digest
from .errors import Malformed, Unsupported
from .messages import ActionResult
from .wire import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..entries import Output
    from .client import Client
    from .conversion import RemoteEntry


class ActionCache:
    """runner's entries on the cache a client speaks to."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.name = client.name

    def lookup(self, fingerprint: bytes) -> RemoteEntry | None:
        """The entry stored for this fingerprint, if the cache has all of it (not yet
        checked against runner's entry rule: the caller does that before `fetch`).
        Malformed if the cache holds something runner does not write there."""
        raw = self.client.get_action_result(action_digest(fingerprint))
        if raw is None:
            return None
        try:
            result = ActionResult.decode(raw)
        except DecodeError as e:
            raise Malformed(
                f"remote cache {self.name}: an action result that does not decode ({e})"
            ) from None
        try:
            return from_action_result(result, self.client.read_blob)
        except Malformed as e:
            raise Malformed(f"remote cache {self.name}: {e}") from None

    def fetch(self, entry: RemoteEntry, output: Output, into: str) -> bool:
        """Download a file output's content to the new file `into` (a temporary name
        the caller chose; never anything else is written), checked against its
        SHA-256; False if the cache no longer has it (nothing is left at `into`).
        The local store then checks it against `output.digest` (BLAKE3) as it
        ingests it."""
        return self.client.download(entry.blobs[output.path], into)

    def store(
        self,
        fingerprint: bytes,
        outputs: Sequence[Output],
        duration: float,
        blob_path: Callable[[bytes], str],
    ) -> None:
        """Share a run's outputs: the blobs the cache lacks first (each file's content
        read from the local store at `blob_path(output.digest)`), then the action
        result that names them, so that a reader never finds it incomplete."""
        from ..entries import FILE

        if not self.client.can_update():
            raise Unsupported(f"remote cache {self.name}: it does not accept action results")
        files = {o.path: blob_path(o.digest) for o in outputs if o.kind == FILE}
        sha256 = {path: file_digest(local) for path, local in files.items()}
        result, trees = to_action_result(outputs, sha256, duration)
        blobs = {b.digest: b for b in trees}
        for path, d in sha256.items():
            blobs.setdefault(d, Blob(d, path=files[path]))
        missing = set(self.client.find_missing(list(blobs)))
        self.client.upload([b for d, b in blobs.items() if d in missing])
        self.client.update_action_result(action_digest(fingerprint), result.encode())
