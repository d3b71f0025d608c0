"""What a command did to the file system, read from `strace -f` output (for --audit).

    command ──strace -f -o FILE──▶ FILE ──parse()──▶ reads, writes, removals,
                                                     listings, programs run

`command_line` puts a command under strace; `parse` reads the trace when the command
has exited and tells a `Sink` (runner.audit.Observed) what happened, in order, as
absolute paths. Only successful calls are traced (`-z`): a probe for a file that is not
there is not a read. Paths are decoded from strace's C-style escapes; a path relative
to a directory fd or the working directory is made absolute with the directory strace
names beside the fd (`-y`: `AT_FDCWD</work/proj>`), or, where it names none, with the
working directory the process had (followed through chdir and inherited across fork).

Not every program a command runs is one *the command* chose: a compiler's assembler is
the compiler's business. The programs reported are those the command's own process ran
(for a list command), or those its shell ran (for a string command: `/bin/sh -c` and
the subshells it forks, until they run something else).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Protocol

    class Sink(Protocol):
        def read(self, path: str) -> None: ...
        def write(self, path: str) -> None: ...
        def remove(self, path: str) -> None: ...
        def rename(self, src: str, dst: str) -> None: ...
        def listed(self, path: str) -> None: ...
        def ran(self, path: str) -> None: ...


# The calls traced: opening and statting files (reads), writing, renaming and removing
# them, listing directories, running programs, and what the working directory is.
READ_BY_PATH = ("stat", "lstat", "access", "readlink")
READ_AT = ("newfstatat", "fstatat64", "statx", "faccessat", "faccessat2", "readlinkat")
TRACED = (
    "open,openat,openat2,creat,"
    + ",".join(READ_BY_PATH + READ_AT)
    + ",execve,execveat,chdir,fchdir,clone,clone3,fork,vfork,getdents,getdents64,"
    "rename,renameat,renameat2,unlink,unlinkat,link,linkat,symlink,symlinkat,truncate"
)


def command_line(strace: str, trace_file: str, argv: list[str]) -> list[str]:
    """`argv` under strace, its trace going to `trace_file`. strace runs the command as
    its child, in its own process group (strace leads it), and exits with the
    command's status."""
    return [
        strace,
        "-f",  # and every process it starts
        "-qq",  # no attach/exit messages on the command's stderr
        "-z",  # successful calls only
        "-y",  # the path of each fd, and of the working directory (AT_FDCWD</dir>)
        "-s",
        "4096",  # whole paths, not the first 32 bytes
        "--seccomp-bpf",  # stop the command only at the traced calls: much cheaper
        "-e",
        "signal=none",
        "-e",
        "trace=" + TRACED,
        "-o",
        trace_file,
        "--",
        *argv,
    ]


# (Unrolled loops, `[^"\\]*(?:\\.[^"\\]*)*`: an alternation per character is 5x slower.)
_FD = r"(AT_FDCWD|-?\d+)(?:<([^>\\]*(?:\\.[^>\\]*)*)>)?"
_STR = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_AT_PATH = re.compile(rf"{_FD}, {_STR}")
_PATH = re.compile(_STR)
_TWO_PATHS = re.compile(rf"{_STR}, {_STR}")
_TWO_AT_PATHS = re.compile(rf"{_FD}, {_STR}, {_FD}, {_STR}")
_SYMLINKAT = re.compile(rf"{_STR}, {_FD}, {_STR}")
_FD_ONLY = re.compile(_FD)
_FLAGS = re.compile(r"\b(O_[A-Z0-9_|]+)")
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{2})|(.))", re.S)
_SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f", b"a": b"\a"}


def unescape(text: str) -> str:
    """A path as strace prints it (octal and C escapes) -> the path (undecodable bytes
    kept, as os.fsdecode keeps them)."""
    if "\\" not in text:
        return text

    def one(m: re.Match[bytes]) -> bytes:
        octal, hexa, char = m.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        if hexa is not None:
            return bytes([int(hexa, 16)])
        return _SIMPLE.get(char, char)

    return os.fsdecode(_ESCAPE.sub(one, text.encode("utf-8", "surrogateescape")))


class _Exec:
    """A program run: by which process, at which line of the trace."""

    __slots__ = ("line", "pid", "path")

    def __init__(self, line: int, pid: int, path: str) -> None:
        self.line, self.pid, self.path = line, pid, path


class _Processes:
    """The processes of one trace: their working directories, who forked whom (and
    when), and the programs each ran."""

    def __init__(self, cwd: str) -> None:
        self.start_cwd = cwd
        self.cwd: dict[int, str] = {}
        self.parent: dict[int, tuple[int, int]] = {}  # child -> (parent, line of the fork)
        self.execs: list[_Exec] = []
        self.root: int | None = None

    def cwd_of(self, pid: int) -> str:
        seen = set()
        p = pid
        while p not in self.cwd and p in self.parent and p not in seen:
            seen.add(p)
            p = self.parent[p][0]
        return self.cwd.get(p, self.start_cwd)

    def forked(self, parent: int, child: int, line: int) -> None:
        self.parent.setdefault(child, (parent, line))
        if child not in self.cwd:
            self.cwd[child] = self.cwd_of(parent)

    def chosen(self, shells: frozenset[str], shell_command: bool) -> list[str]:
        """The programs the command chose to run: its own process's (a list command), or
        its shell's and the shell's subshells' (a string command), in order."""
        by_pid: dict[int, list[_Exec]] = {}
        for e in self.execs:
            by_pid.setdefault(e.pid, []).append(e)
        memo: dict[str, bool] = {}

        def is_shell(path: str) -> bool:
            if path not in memo:
                memo[path] = path in shells or os.path.realpath(path) in shells
            return memo[path]

        def still_shell(pid: int, line: int, depth: int = 0) -> bool:
            """Was this process still the command's shell (or a subshell) at `line`?"""
            if any(e.line < line and not is_shell(e.path) for e in by_pid.get(pid, ())):
                return False
            if pid == self.root:
                return True
            up = self.parent.get(pid)
            return up is not None and depth < 64 and still_shell(up[0], up[1], depth + 1)

        def chosen(e: _Exec) -> bool:
            if not shell_command:
                return e.pid == self.root
            return not is_shell(e.path) and still_shell(e.pid, e.line)

        return [e.path for e in self.execs if chosen(e)]


def parse(
    trace_file: str,
    cwd: str,
    sink: Sink,
    *,
    shell_command: bool,
    shells: frozenset[str] = frozenset(),
) -> None:
    """Tell `sink` what the traced command did. `cwd`: where it started;
    `shell_command`: it was a string run by `/bin/sh -c` (`shells`: the paths that
    shell has, itself not reported as a program run)."""
    procs = _Processes(cwd)
    try:
        with open(trace_file, encoding="utf-8", errors="surrogateescape") as f:
            for no, pid, body in _calls(f):
                if procs.root is None:
                    procs.root = pid  # the first line is the command's own exec
                _call(body, pid, no, procs, sink)
    except OSError:
        return  # no trace (strace could not start): nothing to tell
    for path in procs.chosen(shells, shell_command):
        sink.ran(path)


def _calls(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """(line number, pid, the call) for each call of a trace, a call that another
    process interrupted (`<unfinished ...>` ... `<... openat resumed>`) made whole."""
    pending: dict[int, str] = {}  # pid -> the first half of an interrupted call
    for no, raw in enumerate(lines):
        head, _, body = raw.rstrip("\n").partition(" ")
        if not head.isdigit():
            continue
        pid = int(head)
        body = body.lstrip()
        if body.endswith("<unfinished ...>"):
            pending[pid] = body[: -len("<unfinished ...>")]
            continue
        if body.startswith("<... "):
            end = body.find(" resumed>")
            if end < 0 or pid not in pending:
                continue
            body = pending.pop(pid) + body[end + len(" resumed>") :]
        yield no, pid, body


def _call(body: str, pid: int, no: int, procs: _Processes, sink: Sink) -> None:
    """One traced call that succeeded."""
    paren = body.find("(")
    found = _result(body)
    if paren <= 0 or found is None:
        return
    close, value = found
    if value < 0:
        return
    name = body[:paren]
    args = body[paren + 1 : close]
    if name in ("clone", "clone3", "fork", "vfork"):
        if value > 0:
            procs.forked(pid, value, no)
        return
    m: re.Match[str] | None
    if name == "openat" or name == "openat2":
        m = _AT_PATH.match(args)
        if m:
            flags = _FLAGS.search(args, m.end())
            _opened(_at(m.group(1), m.group(2), m.group(3), pid, procs), flags, sink)
        return
    if name == "open":
        m = _PATH.match(args)
        if m:
            _opened(_rel(m.group(1), pid, procs), _FLAGS.search(args, m.end()), sink)
        return
    if name == "creat" or name == "truncate":
        m = _PATH.match(args)
        if m:
            sink.write(_rel(m.group(1), pid, procs))
        return
    if name in READ_AT:
        m = _AT_PATH.match(args)
        if m and m.group(3):  # (an empty path is the fd itself: fstat)
            sink.read(_at(m.group(1), m.group(2), m.group(3), pid, procs))
        return
    if name in READ_BY_PATH:
        m = _PATH.match(args)
        if m:
            sink.read(_rel(m.group(1), pid, procs))
        return
    if name == "execve" or name == "execveat":
        m = _PATH.match(args) if name == "execve" else _AT_PATH.match(args)
        if m:
            path = (
                _rel(m.group(1), pid, procs)
                if name == "execve"
                else _at(m.group(1), m.group(2), m.group(3), pid, procs)
            )
            procs.execs.append(_Exec(no, pid, path))
        return
    if name == "chdir":
        m = _PATH.match(args)
        if m:
            procs.cwd[pid] = _rel(m.group(1), pid, procs)
        return
    if name in ("fchdir", "getdents", "getdents64"):
        m = _FD_ONLY.match(args)
        if m and m.group(2) is not None:
            where = unescape(m.group(2))
            if name == "fchdir":
                procs.cwd[pid] = where
            else:
                sink.listed(where)
        return
    if name in ("rename", "link", "symlink"):
        m = _TWO_PATHS.match(args)
        if m:
            dst = _rel(m.group(2), pid, procs)
            if name == "rename":
                sink.rename(_rel(m.group(1), pid, procs), dst)
            else:
                sink.write(dst)
        return
    if name in ("renameat", "renameat2", "linkat"):
        m = _TWO_AT_PATHS.match(args)
        if m:
            dst = _at(m.group(4), m.group(5), m.group(6), pid, procs)
            if name == "linkat":
                sink.write(dst)
            else:
                sink.rename(_at(m.group(1), m.group(2), m.group(3), pid, procs), dst)
        return
    if name == "symlinkat":
        m = _SYMLINKAT.match(args)
        if m:
            sink.write(_at(m.group(2), m.group(3), m.group(4), pid, procs))
        return
    if name == "unlink":
        m = _PATH.match(args)
        if m:
            sink.remove(_rel(m.group(1), pid, procs))
        return
    if name == "unlinkat":
        m = _AT_PATH.match(args)
        if m and "AT_REMOVEDIR" not in args[m.end() :]:
            sink.remove(_at(m.group(1), m.group(2), m.group(3), pid, procs))
        return


def _result(body: str) -> tuple[int, int] | None:
    """(where the arguments end, the value returned) of a call's line: `...) = 3</x>`,
    the `=` aligned with spaces or not."""
    end = len(body)
    while True:
        eq = body.rfind(" = ", 0, end)
        if eq < 0:
            return None
        close = eq
        while close > 0 and body[close - 1] == " ":
            close -= 1
        if close > 0 and body[close - 1] == ")":
            ret = body[eq + 3 :].split("<", 1)[0].split(" ", 1)[0]
            try:
                return close - 1, int(ret, 0)
            except ValueError:
                pass
        end = eq


def _opened(path: str, flags: re.Match[str] | None, sink: Sink) -> None:
    """open/openat: a read, a write or both, by the flags."""
    f = flags.group(1).split("|") if flags else ["O_RDONLY"]
    if "O_PATH" in f or "O_DIRECTORY" in f:
        return  # no content: a handle, or a directory (its listing is getdents)
    writes = "O_WRONLY" in f or "O_RDWR" in f or "O_CREAT" in f or "O_TRUNC" in f
    reads = "O_WRONLY" not in f and "O_TRUNC" not in f
    if reads:
        sink.read(path)
    if writes:
        sink.write(path)


def _rel(text: str, pid: int, procs: _Processes) -> str:
    """A path argument, absolute: relative to the process's working directory."""
    path = unescape(text)
    if not path.startswith("/"):
        path = os.path.join(procs.cwd_of(pid), path)
    return os.path.normpath(path)


def _at(fd: str, fd_path: str | None, text: str, pid: int, procs: _Processes) -> str:
    """A path argument relative to a directory fd (strace names its path), absolute."""
    path = unescape(text)
    if path.startswith("/"):
        return os.path.normpath(path)
    if fd_path is not None:
        base = unescape(fd_path)
        if fd == "AT_FDCWD":
            procs.cwd[pid] = base  # strace says where the process is
    else:
        base = procs.cwd_of(pid)
    return os.path.normpath(os.path.join(base, path))
