"""Input and output patterns: globs relative to the project root, `**` for any number
of directories, matched segment by segment.

    src/**/*.py      every .py file under src/, at any depth
    in/50/*.txt      the .txt files of in/50/ (only that directory is read)
    pyproject.toml   one file, named explicitly
    !src/gen/**      leave these out (a later pattern wins)

Files ignored by git (.gitignore files, .git/info/exclude) are left out of what a
wildcard matches, unless the pattern's fixed part already points inside an ignored
directory (`dist/*.whl` finds wheels even when dist/ is ignored) or the pattern names
the file exactly. `.git`, the cache directory and `__pycache__` are never matched, nor
`.runner-tmp` (where a restore stages files when the cache is on another file system).

Output patterns (`outputs=True`) match what a task leaves, as its cache entry keeps it:
a symbolic link is a leaf, whatever it points to (never followed, never read through),
and a directory that a literal pattern names, or one below it, is matched itself when
it is empty.

Otherwise only regular files (and links to them) are matched. A FIFO, a socket or a
device that a pattern would match is never opened (reading a FIFO blocks until someone
writes to it, a device may never end): the walk sets it aside in `Walk.special`, for the
caller to report.
"""

from __future__ import annotations

import os
import stat as stat_mod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAGIC = frozenset("*?[")
STAGING_DIR = ".runner-tmp"  # runner.restore's, beside outputs on another file system
ALWAYS_SKIPPED = frozenset((".git", ".hg", ".svn", "__pycache__", STAGING_DIR))


def has_magic(s: str) -> bool:
    return not MAGIC.isdisjoint(s)


def split_pattern(pattern: str) -> tuple[bool, list[str], list[str]]:
    """(negated, the fixed leading segments, the segments with wildcards)."""
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    segs = [s for s in body.replace("\\", "/").split("/") if s and s != "."]
    fixed: list[str] = []
    for s in segs:
        if has_magic(s):
            break
        fixed.append(s)
    return negated, fixed, segs[len(fixed) :]


_segment_cache: dict[str, Callable[[str], bool]] = {}


def segment_matcher(seg: str) -> Callable[[str], bool]:
    """A test for one path segment: `*.py`, `test_*`, `[ab]?.txt` (fnmatch rules, case
    sensitive, `*` never crosses a `/`). The common shapes avoid regular expressions."""
    cached = _segment_cache.get(seg)
    if cached is not None:
        return cached
    m: Callable[[str], bool]
    if seg == "*":
        m = _any
    elif seg.startswith("*") and not has_magic(seg[1:]):
        suffix = seg[1:]
        m = lambda name: name.endswith(suffix)  # noqa: E731
    elif seg.endswith("*") and not has_magic(seg[:-1]):
        prefix = seg[:-1]
        m = lambda name: name.startswith(prefix)  # noqa: E731
    else:
        import fnmatch
        import re

        rx = re.compile(fnmatch.translate(seg))
        m = lambda name: rx.match(name) is not None  # noqa: E731
    _segment_cache[seg] = m
    return m


def _any(name: str) -> bool:
    return True


def match(pattern: str, path: str) -> bool:
    """Does `path` (relative, '/'-separated) match the pattern (ignoring any '!')?"""
    _neg, fixed, rest = split_pattern(pattern)
    parts = path.split("/")
    if parts[: len(fixed)] != fixed:
        return False
    if not rest:  # a literal: the file itself, or anything under that directory
        return True
    return _match_segments(rest, parts[len(fixed) :])


def matches(patterns: Iterable[str], path: str) -> bool:
    """Is `path` in the set the patterns describe (a later '!' pattern removes)?"""
    hit = False
    for p in patterns:
        if p.startswith("!"):
            if hit and match(p, path):
                hit = False
        elif not hit and match(p, path):
            hit = True
    return hit


def may_match_below(pattern: str, directory: str) -> bool:
    """Can the pattern (ignoring any '!') match a file below `directory` (relative,
    '/'-separated; "" is the root)? For a directory whose files are not known: true
    unless the pattern's fixed part leads elsewhere, or it matches too few segments."""
    _neg, fixed, rest = split_pattern(pattern)
    parts = directory.split("/") if directory else []
    n = min(len(fixed), len(parts))
    if fixed[:n] != parts[:n]:
        return False
    if len(fixed) >= len(parts) or not rest:
        return True  # it points into the directory, or names a directory above it
    # Every file below `directory` has more segments than it: a pattern without `**`
    # matches exactly len(fixed) + len(rest).
    return "**" in rest or len(fixed) + len(rest) > len(parts)


def _match_segments(segs: list[str], parts: list[str]) -> bool:
    if not segs:
        return not parts
    head = segs[0]
    if head == "**":
        return any(_match_segments(segs[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    return segment_matcher(head)(parts[0]) and _match_segments(segs[1:], parts[1:])


class Ignores:
    """git's ignore rules, read as the walk meets .gitignore files. pathspec (which
    knows gitignore's rules) is imported only when a .gitignore exists."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._specs: dict[str, object | None] = {}  # dir (relative, "" = root) -> spec
        self.files: list[str] = []  # the ignore files read (relative)
        self.probed: set[str] = set()  # ignore files looked for above a pattern's base
        exclude = os.path.join(root, ".git", "info", "exclude")
        self._base = self._load(exclude, ".git/info/exclude")

    def _load(self, path: str, rel: str) -> object | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = [
                    ln
                    for ln in f.read().splitlines()
                    if ln.strip() and not ln.lstrip().startswith("#")
                ]
        except OSError:
            return None
        self.files.append(rel)
        if not lines:
            return None
        import pathspec

        return pathspec.GitIgnoreSpec.from_lines(lines)

    def enter(self, reldir: str, names: Iterable[str]) -> None:
        """Called for each directory the walk reads, with its entry names."""
        if reldir not in self._specs:
            spec = None
            if ".gitignore" in names:
                rel = f"{reldir}/.gitignore" if reldir else ".gitignore"
                spec = self._load(os.path.join(self.root, rel), rel)
            self._specs[reldir] = spec

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        """Is this path ignored by the rules of the directories above it (those the
        walk has entered)? Deeper .gitignore files override shallower ones."""
        verdict = None
        probe = relpath + "/" if is_dir else relpath
        candidates = [("", self._base)] if self._base is not None else []
        parts = relpath.split("/")
        for i in range(len(parts)):
            d = "/".join(parts[:i])
            spec = self._specs.get(d)
            if spec is not None:
                candidates.append((d, spec))
        for d, spec in candidates:
            sub = probe[len(d) + 1 :] if d else probe
            result = spec.check_file(sub).include  # type: ignore[attr-defined]
            if result is not None:
                verdict = result
        return bool(verdict)

    def path_ignored(self, relpath: str, is_dir: bool = False) -> bool:
        """Is this path ignored, itself or through a directory above it? (For paths
        met one by one, as a watcher meets them: the ignore files on the way are read
        as needed.)"""
        parts = relpath.split("/")
        for i in range(len(parts)):
            d = "/".join(parts[:i])
            if d not in self._specs:
                has = os.path.exists(os.path.join(self.root, d, ".gitignore"))
                self.enter(d, (".gitignore",) if has else ())
            if i and self.ignored(d, True):
                return True
        return self.ignored(relpath, is_dir)


class Walk:
    """The files some patterns match, with what decides that result: every directory
    read to find them (a listing changes when an entry comes or goes) and the files
    named exactly that did not exist. If none of those changed, neither did the match
    (a named file that vanishes is seen when it is statted). `special`: what the
    patterns matched that is not a regular file (a FIFO, a socket, a device).
    `unmatched`: the patterns (not `!` ones) that matched no file, often a typo
    (`scr/*.py`)."""

    def __init__(
        self,
        files: list[str],
        dirs: list[str],
        ignore_files: list[str],
        absent: list[str],
        special: list[str] | None = None,
        unmatched: list[str] | None = None,
    ) -> None:
        self.files = files
        self.dirs = dirs
        self.ignore_files = ignore_files
        self.absent = absent
        self.special = special or []
        self.unmatched = unmatched or []


def special_kind(mode: int) -> str | None:
    """What a file of this st_mode is, if it is neither a regular file nor a directory
    ("a FIFO", "a socket", ...); None for those two."""
    if stat_mod.S_ISREG(mode) or stat_mod.S_ISDIR(mode):
        return None
    if stat_mod.S_ISFIFO(mode):
        return "a FIFO"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    if stat_mod.S_ISCHR(mode):
        return "a character device"
    if stat_mod.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def describe_special(root: str, rel: str) -> str:
    """What the special file at `rel` is, for a message ("a FIFO")."""
    try:
        return special_kind(os.stat(os.path.join(root, rel)).st_mode) or "a regular file now"
    except OSError:
        return "gone now"


def expand(
    root: str,
    patterns: Iterable[str],
    *,
    skip: Iterable[str] = (),
    gitignore: bool = True,
    outputs: bool = False,
) -> Walk:
    """The files under `root` the patterns match, sorted, as '/'-separated relative paths.
    `skip`: relative directories never entered (the cache directory). `outputs`: match
    as output patterns (symlinks as leaves, empty directories; see above)."""
    skipped = set(skip)
    found: dict[str, bool] = {}  # path -> is it a regular file (or a link to one)?
    dirs: dict[str, None] = {}
    absent: list[str] = []
    unmatched: list[str] = []
    ignores = Ignores(root) if gitignore else None
    for pattern in patterns:
        negated, fixed, rest = split_pattern(pattern)
        if negated:
            for p in [p for p in found if match(pattern, p)]:
                del found[p]
            continue
        before = len(found)
        base = "/".join(fixed)
        if not rest:
            if not _literal(root, base, found, dirs, skipped, outputs):
                absent.append(base)
            if len(found) == before and not _matches_any(pattern, base, found):
                unmatched.append(pattern)
            continue
        # Rules apply below the fixed part of the pattern only if that part is not
        # itself ignored: `dist/*.whl` means the wheels in dist/, ignored or not.
        use = ignores
        if ignores is not None and base:
            _enter_parents(root, base, ignores)
            if ignores.ignored(base, True):
                use = None
        _walk(root, base, rest, found, dirs, skipped, use, links=outputs)
        # Nothing new: unmatched, unless it matched only files found already.
        if len(found) == before and not _matches_any(pattern, base, found):
            unmatched.append(pattern)
    ignore_files = sorted(set(ignores.files) | ignores.probed) if ignores else []
    files = sorted(p for p, regular in found.items() if regular)
    special = sorted(p for p, regular in found.items() if not regular)
    return Walk(files, sorted(dirs), ignore_files, absent, special, unmatched)


def _matches_any(pattern: str, base: str, found: dict[str, bool]) -> bool:
    """Does the pattern match a file found already (by an earlier pattern)? Only the
    files under its fixed part can."""
    under = base + "/" if base else ""
    return any((p.startswith(under) or p == base) and match(pattern, p) for p in found)


def _literal(
    root: str,
    rel: str,
    found: dict[str, bool],
    dirs: dict[str, None],
    skipped: set[str],
    outputs: bool = False,
) -> bool:
    """A pattern without wildcards: the file, or every file under the directory (for
    outputs, a link itself, and the empty directories too). False if there is nothing
    at that path."""
    if not rel:
        return True
    try:
        st = os.stat(os.path.join(root, rel), follow_symlinks=not outputs)
    except OSError:
        return False
    if stat_mod.S_ISDIR(st.st_mode):
        _walk(root, rel, ["**", "*"], found, dirs, skipped, None, links=outputs, empty=outputs)
    else:
        found[rel] = stat_mod.S_ISREG(st.st_mode) or (outputs and stat_mod.S_ISLNK(st.st_mode))
    return True


def _is_regular(e: os.DirEntry[str], links: bool = False) -> bool:
    """Is this entry (not a directory) a file to read: a regular file, a link to one,
    or a link to nothing (which the caller sees vanish when it stats it)? With `links`
    (output patterns), any link: it is kept as a link. A FIFO, a socket or a device is
    not. The entry's type comes with the listing: no system call for a regular file."""
    try:
        if e.is_file():
            return True
        return e.is_symlink() and (links or not os.path.exists(e.path))
    except OSError:
        return True  # gone meanwhile: as for a vanished file


def _enter_parents(root: str, base: str, ignores: Ignores) -> None:
    """Read the ignore files of the directories above a pattern's fixed part (the walk
    lists none of them). Each is recorded as probed, there or not: a cached match must
    be redone when one appears, changes or goes."""
    parts = base.split("/")
    for i in range(len(parts)):
        d = "/".join(parts[:i])
        if d not in ignores._specs:
            rel = f"{d}/.gitignore" if d else ".gitignore"
            ignores.probed.add(rel)
            here = os.path.exists(os.path.join(root, rel))
            ignores.enter(d, (".gitignore",) if here else ())


def _walk(
    root: str,
    base: str,
    segs: list[str],
    found: dict[str, bool],
    dirs: dict[str, None],
    skipped: set[str],
    ignores: Ignores | None,
    *,
    links: bool = False,
    empty: bool = False,
) -> None:
    """Match `segs` against the tree below `base`, reading only the directories that
    can hold a match. `links`: a symlink is a leaf (output patterns); `empty`: an
    empty directory is a match itself (below a literal output pattern)."""
    # Work items: (relative dir, index of the next segment to match).
    stack: list[tuple[str, int]] = [(base, 0)]
    seen: set[tuple[str, int]] = set()
    last = len(segs) - 1
    while stack:
        rel, i = stack.pop()
        if (rel, i) in seen:
            continue
        seen.add((rel, i))
        path = os.path.join(root, rel) if rel else root
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            if rel:
                dirs[rel] = None
            continue
        dirs[rel] = None
        if empty and not entries:
            found[rel] = True  # an empty directory, matched itself
            continue
        if ignores is not None:
            ignores.enter(rel, [e.name for e in entries])
        seg = segs[i]
        for e in entries:
            name = e.name
            child = f"{rel}/{name}" if rel else name
            try:
                if links:
                    is_dir = e.is_dir(follow_symlinks=False)  # a link is a leaf
                else:
                    is_dir = e.is_dir()
                    if is_dir and e.is_symlink():
                        continue  # a wildcard never follows a link to a directory (no loops)
            except OSError:
                continue
            if is_dir and (name in ALWAYS_SKIPPED or child in skipped):
                continue
            if ignores is not None and ignores.ignored(child, is_dir):
                continue
            if seg == "**":
                # `**` matches zero directories (try the next segment here) or more.
                if is_dir:
                    stack.append((child, i))
                if i == last:
                    if not is_dir:
                        found[child] = _is_regular(e, links)
                    continue
                nxt = segs[i + 1]
                if segment_matcher(nxt)(name):
                    if i + 1 == last:
                        if not is_dir:
                            found[child] = _is_regular(e, links)
                    elif is_dir:
                        stack.append((child, i + 2))
                continue
            if not segment_matcher(seg)(name):
                continue
            if i == last:
                if not is_dir:
                    found[child] = _is_regular(e, links)
            elif is_dir:
                stack.append((child, i + 1))
