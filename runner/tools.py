"""`@task(tools=[...])`: the tools a task runs, as part of its fingerprint.

Each name counts twice over, for what it can be: the executable it names (found on the
task's PATH, or a path relative to the project root), by the digest of its content
(symbolic links followed: a tool upgraded in place or a PATH that now finds another
copy is a change), and the Python distribution of that name installed for the
interpreter runner runs on, by its version (a console script's wrapper stays the same
across upgrades; the version does not). A tool that is neither is "absent", which is a
state like another: installing it later runs the task again.

Nothing here reads a file on a no-op run: an executable's digest is trusted while its
stat data is as recorded (runner.fingerprint's rule for inputs, racy-git included),
and the distributions' versions while no directory of `sys.path` has changed (a pip
install or upgrade adds and removes `.dist-info` directories, which changes the
directory's mtime). Digests of content and versions go into the key, never paths or
stat data: the key is the same on another machine with the same tools.
"""

from __future__ import annotations

import os
import sys
import time

from . import fingerprint as fp
from .fsclock import racy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .tasks import Task


class ToolDigests:
    """A task's tools as the key sees them, and what to record for the next run."""

    __slots__ = ("digests", "record")

    def __init__(self, digests: dict[str, bytes], record: dict[str, Any]) -> None:
        self.digests = digests  # tool name -> digest of (executable content, version)
        self.record = record  # stat data to trust them by next time


class Tools:
    """Resolves and digests tools for one run (each distribution scan done once)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._sites: list[tuple[str, int, int]] | None = None
        self._versions: dict[str, str] | None = None

    def of_task(
        self, task: Task, environ: Mapping[str, str], last: Mapping[str, Any] | None
    ) -> ToolDigests:
        """The digests of the task's tools; `last`: what the previous run recorded."""
        last = last or {}
        found = {n: self.executable(n, environ.get("PATH", os.defpath)) for n in task.tools}
        paths = sorted({p for p in found.values() if p is not None})
        previous = fp.FileSet.from_record(last.get("files"))
        files, _read = fp.scan("/", [p[1:] for p in paths], previous)
        versions = self._dist_versions(last)
        digests = {}
        for name, path in found.items():
            content = files.get(path[1:]) if path is not None else None
            version = versions.get(_normal(name))
            digests[name] = fp.digest(
                b"exe:"
                + (content[0] if content is not None else b"absent")
                + b"\0dist:"
                + (version.encode() if version is not None else b"absent")
            )
        record = {"files": files.to_record(), "sites": self._sites, "versions": versions}
        return ToolDigests(digests, record)

    def executable(self, name: str, path: str) -> str | None:
        """The real path of the executable `name` names (None if there is none): a
        path when it holds a `/` (relative to the project root), else the first match
        on `path`, as a shell would find it."""
        if "/" in name:
            candidates = [os.path.join(self.root, name)]
        else:
            candidates = [os.path.join(d or ".", name) for d in path.split(os.pathsep)]
        for c in candidates:
            try:
                st = os.stat(c)
            except OSError:
                continue
            if st.st_mode & 0o170000 == 0o100000 and st.st_mode & 0o111:
                return os.path.realpath(os.path.join(self.root, c))
        return None

    def _dist_versions(self, last: Mapping[str, Any]) -> dict[str, str]:
        """Each installed distribution's version, by normalised name: as recorded when
        no directory of sys.path changed since, else read from the .dist-info names."""
        if self._versions is not None:
            return self._versions
        sites = []
        for d in sys.path:
            if d == self.root:
                continue  # the tasksfile's directory, put first by the loader
            try:
                st = os.stat(d or ".")
            except OSError:
                continue
            sites.append((d, st.st_mtime_ns, st.st_ino))
        if last.get("sites") == sites and last.get("versions") is not None:
            self._sites = sites
            self._versions = dict(last["versions"])
            return self._versions
        listed_at = time.time_ns()
        versions: dict[str, str] = {}
        for d, _m, _i in sites:
            try:
                names = os.listdir(d or ".")
            except OSError:
                continue
            for n in names:
                if n.endswith(".dist-info") and "-" in n:
                    dist, _, version = n[: -len(".dist-info")].partition("-")
                    versions.setdefault(_normal(dist), version)  # the first on sys.path wins
        # A directory changed within the clock's granularity of this listing may change
        # again with the same mtime: then nothing is trusted next time.
        self._sites = None if any(racy(m, m, listed_at) for _d, m, _i in sites) else sites
        self._versions = versions
        return versions


def _normal(name: str) -> str:
    """A distribution name as .dist-info directories spell it (PEP 503, with `_`)."""
    return name.lower().replace("-", "_").replace(".", "_")
