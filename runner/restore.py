"""Putting a cache entry's outputs back in the project, without trusting the entry.

    restore(outputs, ...)   check the entry against the rule (runner.entries.refusal);
                            copy each file's blob into the store's tmp/, checking its
                            digest, and make each symlink there (a damaged or missing
                            blob changes nothing in the project); then rename each
                            into place, and make the empty directories

Every directory on the way to an output is opened from a descriptor of the project
root, one by one, with O_NOFOLLOW: a symbolic link on the way (one planted after the
check, too) is never followed; the entry is refused instead. Missing directories are
made.

Temporary files are never beside the outputs, where an input or output pattern could
match them and a killed run would leave them: they are in the store's tmp/ (on the
cache directory's file system), named with the runner's pid, and cleared at the next
start when that runner is gone (runner.store). When an output's directory is on
another file system than the cache directory, a rename cannot cross: the staged file
is copied into a directory `.runner-tmp/` in the output's directory (its file system),
which no pattern ever matches (runner.globs.ALWAYS_SKIPPED), and renamed from there.
The path of each such directory is noted in tmp/ before it is made, so that a run
killed meanwhile has it cleared too (`clear_staging`).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from .cas import STAGING_NOTE, remove_file
from .entries import DIRECTORY, FILE, SYMLINK, Refused, refusal
from .globs import STAGING_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .cas import Blobs
    from .entries import Output

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def restore(
    outputs: list[Output], root: str, blobs: Blobs, patterns: Sequence[str], never: list[str]
) -> str | None:
    """Put an entry's outputs in place; None when done, or why the cache could not (the
    task must then run). Raises Refused when the entry breaks the rule; nothing is
    touched then."""
    why = refusal(outputs, patterns, root, never)
    if why is not None:
        raise Refused(why)
    staged: dict[str, str] = {}
    try:
        damaged = False
        for o in outputs:
            if o.kind == FILE:
                # Every blob is checked, also after a damaged one: each damaged blob
                # is deleted, so that the run that follows stores it anew.
                tmp = blobs.stage(o.digest)
                if tmp is None:
                    damaged = True
                    continue
                staged[o.path] = tmp
                os.chmod(tmp, stat.S_IMODE(o.mode))
            elif o.kind == SYMLINK:
                tmp = blobs.new_tmp()
                os.symlink(o.target, tmp)
                staged[o.path] = tmp
        if damaged:
            return "the cache entry is damaged (a blob is missing or fails its digest)"
        with _Tree(root, blobs) as tree:
            for o in sorted(outputs, key=lambda o: o.path):
                tree.put(o, staged.get(o.path, ""))
    except OSError as e:
        return f"the cache entry cannot be restored ({e.strerror or e})"
    finally:
        for tmp in staged.values():
            remove_file(tmp)  # those a failure left (the others were renamed away)
    return None


def remove(root: str, paths: Iterable[str]) -> None:
    """Delete these outputs (files, symlinks, empty directories), never through a
    symbolic link on the way: one whose way holds a link, or that is gone, stays."""
    with _Tree(root, None) as tree:
        for p in paths:
            tree.remove(p)


class _LinkOnTheWay(Exception):
    pass


class _Tree:
    """Directories of the project, opened from the root one by one, never through a
    symbolic link; closed on the way out."""

    def __init__(self, root: str, blobs: Blobs | None) -> None:
        self.blobs = blobs
        self.fds: dict[str, int] = {"": os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)}
        self.root = root
        self._staging: dict[str, int] = {}  # directory -> its .runner-tmp (another fs)
        self._note: str | None = None

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        for rel, fd in self._staging.items():
            os.close(fd)
            try:
                os.rmdir(STAGING_DIR, dir_fd=self.fds[rel])
            except OSError:
                pass  # another runner's files are in it too
        for fd in self.fds.values():
            os.close(fd)
        if self._note is not None:
            remove_file(self._note)

    def directory(self, rel: str, create: bool) -> int:
        """A descriptor of the directory `rel` (made when missing and `create`)."""
        fd = self.fds.get(rel)
        if fd is not None:
            return fd
        parent = self.directory(posixpath.dirname(rel), create)
        name = posixpath.basename(rel)
        try:
            fd = os.open(name, _DIR, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=parent)
            except FileExistsError:
                pass  # made meanwhile (another runner restoring the same task's deps)
            fd = os.open(name, _DIR, dir_fd=parent)
        except NotADirectoryError:
            if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                raise _LinkOnTheWay(rel) from None
            raise
        self.fds[rel] = fd
        return fd

    def put(self, o: Output, staged: str) -> None:
        """Rename a staged file or symlink into place, or make a directory."""
        parent, name = posixpath.split(o.path)
        try:
            fd = self.directory(parent, create=True)
        except _LinkOnTheWay as e:
            raise Refused(f"output {o.path!r} is reached through a symbolic link ({e})") from None
        if o.kind == DIRECTORY:
            _make_directory(fd, name, stat.S_IMODE(o.mode))
            return
        try:
            os.replace(staged, name, dst_dir_fd=fd)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            self._put_across(o, staged, parent, name)

    def _put_across(self, o: Output, staged: str, parent: str, name: str) -> None:
        """put() for an output on another file system than the cache directory."""
        near = self._staging_dir(parent)
        tmp = f"{os.getpid()}-{os.urandom(6).hex()}"
        if o.kind == SYMLINK:
            os.symlink(o.target, tmp, dir_fd=near)
        else:
            _copy_file(staged, near, tmp, stat.S_IMODE(o.mode))
        try:
            os.replace(tmp, name, src_dir_fd=near, dst_dir_fd=self.fds[parent])
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=near)
            except OSError:
                pass
            raise

    def _staging_dir(self, parent: str) -> int:
        fd = self._staging.get(parent)
        if fd is not None:
            return fd
        assert self.blobs is not None
        if self._note is None:
            self._note = self.blobs.new_tmp() + STAGING_NOTE
        with open(self._note, "a") as f:  # first: a killed run's directory is found
            f.write(os.path.join(self.root, parent) + "\n")
        parent_fd = self.fds[parent]
        try:
            os.mkdir(STAGING_DIR, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        fd = self._staging[parent] = os.open(STAGING_DIR, _DIR, dir_fd=parent_fd)
        return fd

    def remove(self, path: str) -> None:
        parent, name = posixpath.split(path)
        try:
            fd = self.directory(parent, create=False)
            try:
                os.unlink(name, dir_fd=fd)
            except IsADirectoryError:
                os.rmdir(name, dir_fd=fd)
        except (OSError, _LinkOnTheWay):
            pass  # gone, reached through a link, or a directory no longer empty


def _make_directory(parent: int, name: str, mode: int) -> None:
    """An empty directory output: made (replacing a file or link in its place)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent)
            os.mkdir(name, mode, dir_fd=parent)
    except FileNotFoundError:
        os.mkdir(name, mode, dir_fd=parent)
    fd = os.open(name, _DIR, dir_fd=parent)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _copy_file(src: str, dir_fd: int, name: str, mode: int) -> None:
    import shutil

    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        with open(src, "rb") as fin, open(out, "wb", closefd=False) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.fchmod(out, mode)
    finally:
        os.close(out)


def clear_staging(note: str, pid: int) -> None:
    """A dead runner's note of staging directories: delete its files in each, and the
    directories when empty, then the note."""
    try:
        with open(note, encoding="utf-8", errors="surrogateescape") as f:
            dirs = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        dirs = []
    prefix = f"{pid}-"
    for d in dirs:
        try:
            fd = os.open(os.path.join(d, STAGING_DIR), _DIR)
        except OSError:
            continue
        try:
            for name in os.listdir(fd):
                if name.startswith(prefix):
                    try:
                        os.unlink(name, dir_fd=fd)
                    except OSError:
                        pass
        finally:
            os.close(fd)
        try:
            os.rmdir(os.path.join(d, STAGING_DIR))
        except OSError:
            pass
    remove_file(note)
