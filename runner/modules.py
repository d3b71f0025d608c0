"""Python modules, as the code digest (runner.code) sees them: which modules a piece of
code imports (read from its bytecode), where an import would find a module that is not
loaded yet (asked of the import system's finders: nothing is run), and whether a file is
the project's own code or installed code (the standard library, site-packages, a virtual
environment), decided by real paths.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from typing import Any


# ---------------------------------------------------------------- imports in bytecode


class Opcodes:
    """The numbers of the opcodes an import statement compiles to."""

    __slots__ = ("import_name", "load_const", "extended_arg", "cache", "load_small_int")

    def __init__(
        self,
        import_name: int,
        load_const: int,
        extended_arg: int,
        cache: int | None,
        load_small_int: int | None,
    ) -> None:
        self.import_name = import_name
        self.load_const = load_const
        self.extended_arg = extended_arg
        self.cache = cache  # inline cache entries (3.11+), skipped
        self.load_small_int = load_small_int  # how 3.14 loads an import's level


# Per Python version (tests/test_code.py checks the running one against `opcode.opmap`):
# importing `opcode` costs 0.5-0.9 ms, more than reading the imports of a hundred tasks.
_KNOWN: dict[tuple[int, int], tuple[int, int, int, int | None, int | None]] = {
    (3, 10): (108, 100, 144, None, None),
    (3, 11): (108, 100, 144, 0, None),
    (3, 12): (108, 100, 144, 0, None),
    (3, 13): (75, 83, 71, 0, None),
}
_opcodes: list[Opcodes] = []


def import_opcodes() -> Opcodes:
    if not _opcodes:
        known = _KNOWN.get(sys.version_info[:2])
        if known is None:
            from opcode import opmap

            known = (
                opmap["IMPORT_NAME"],
                opmap["LOAD_CONST"],
                opmap["EXTENDED_ARG"],
                opmap.get("CACHE"),
                opmap.get("LOAD_SMALL_INT"),
            )
        _opcodes.append(Opcodes(*known))
    return _opcodes[0]


def may_import(raw: bytes) -> bool:
    """Can bytecode `raw` (a code object's co_code) hold an import? A quick test: the
    opcode bytes are the even ones."""
    return import_opcodes().import_name in raw[::2]


def imported_modules(code: Any, package: str | None, *, nested: bool = False) -> list[str]:
    """The modules the import statements of `code` (and of the code nested in it, if
    `nested`) would load, with `package` the package relative imports start from:
    for `import a.b.c`, a, a.b and a.b.c; for `from a import b`, a and a.b (b may be a
    submodule). Modules that do not exist are listed too: finding them is the caller's."""
    found: list[str] = []
    stack = [code]
    while stack:
        c = stack.pop()
        raw = c.co_code
        if may_import(raw):
            _read_imports(c, raw, package, found)
        if nested:
            stack.extend(k for k in c.co_consts if hasattr(k, "co_code"))
    return found


def _read_imports(code: Any, raw: bytes, package: str | None, found: list[str]) -> None:
    """The imports of one code object: each IMPORT_NAME is found with bytes.find (the
    opcode bytes are the even ones), and the two values loaded before it are its level
    (0: absolute) and its fromlist."""
    ops = import_opcodes()
    opcodes, args = raw[::2], raw[1::2]
    j = opcodes.find(ops.import_name)
    while j >= 0:
        fromlist_at = _before(opcodes, j, ops)
        level_at = _before(opcodes, fromlist_at, ops)
        name = code.co_names[_arg(opcodes, args, j, ops)]
        level = _loaded(code, opcodes, args, level_at, ops)
        fromlist = _loaded(code, opcodes, args, fromlist_at, ops)
        _add_import(name, level, fromlist, package, found)
        j = opcodes.find(ops.import_name, j + 1)


def _arg(opcodes: bytes, args: bytes, j: int, ops: Opcodes) -> int:
    """The argument of instruction j, with the EXTENDED_ARG prefixes before it."""
    arg, shift, k = args[j], 8, j - 1
    while k >= 0 and opcodes[k] == ops.extended_arg:
        arg |= args[k] << shift
        shift += 8
        k -= 1
    return arg


def _before(opcodes: bytes, j: int, ops: Opcodes) -> int:
    """The instruction before instruction j (-1 if none): past j's EXTENDED_ARG
    prefixes and the inline cache entries that follow the one before."""
    k = j - 1
    while k >= 0 and opcodes[k] == ops.extended_arg:
        k -= 1
    while k >= 0 and opcodes[k] == ops.cache:
        k -= 1
    return k


def _loaded(code: Any, opcodes: bytes, args: bytes, k: int, ops: Opcodes) -> Any:
    """The constant instruction k loads (None if it loads none)."""
    if k < 0:
        return None
    op = opcodes[k]
    if op == ops.load_const:
        return code.co_consts[_arg(opcodes, args, k, ops)]
    if op == ops.load_small_int:
        return _arg(opcodes, args, k, ops)
    return None


def _add_import(
    name: str, level: Any, fromlist: Any, package: str | None, found: list[str]
) -> None:
    if type(level) is not int:
        level = 0  # not the usual shape: read as absolute
    if level > 0:
        parts = (package or "").split(".") if package else []
        if level > len(parts):
            return  # beyond the top-level package: the import fails when it runs
        base = ".".join(parts[: len(parts) - level + 1])
        name = f"{base}.{name}" if name else base
    if not name:
        return
    pieces = name.split(".")
    found.extend(".".join(pieces[: i + 1]) for i in range(len(pieces)))
    if type(fromlist) is tuple:
        found.extend(f"{name}.{f}" for f in fromlist if type(f) is str and f != "*")


# ---------------------------------------------------------------- finding a module


class Finder:
    """Where an import of a module name would find it, as the import system's finders
    say (the path of the tasksfile's run: sys.path, sys.meta_path), without importing
    anything: a submodule's package is looked up the same way, not run. Memoised."""

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec | None] = {}

    def spec(self, name: str) -> ModuleSpec | None:
        if name in self._specs:
            return self._specs[name]
        self._specs[name] = None  # while looking: a package that names itself ends here
        parent, _, _ = name.rpartition(".")
        path = None
        if parent:
            loaded = sys.modules.get(parent)
            if loaded is not None:
                path = getattr(loaded, "__path__", None)
            else:
                parent_spec = self.spec(parent)
                path = parent_spec.submodule_search_locations if parent_spec else None
            if path is None:
                return None  # the parent is no package (or is nowhere): no such module
        found = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                found = find(name, path)
            except Exception:  # a finder that fails knows nothing of this name
                found = None
            if found is not None:
                break
        self._specs[name] = found
        return found


# ---------------------------------------------------------------- the project's own files


class ProjectFiles:
    """Tells the project's own Python files from installed ones. A file is the
    project's if it lies under the project root (as named, or by its real path) and
    not in an installation directory: the interpreter's prefixes, the standard
    library, site-packages (the system's, the user's, a virtual environment's) — unless
    that directory holds the whole project (a checkout under /usr/src, a virtual
    environment made in the project's directory) — nor in a virtual environment
    (a directory with pyvenv.cfg, or conda-meta/) inside the project."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(os.path.abspath(root), "")
        self.real_root = os.path.join(os.path.realpath(root), "")
        self._known: dict[str, bool] = {}
        self._installed: tuple[str, ...] | None = None
        self._environments: dict[str, bool] = {}

    def local(self, filename: str | None) -> bool:
        """Is this file the project's own code?"""
        if not filename:
            return False
        known = self._known.get(filename)
        if known is None:
            known = self._known[filename] = self._decide(filename)
        return known

    def _decide(self, filename: str) -> bool:
        if not filename.startswith((self.root, self.real_root)):
            return False
        real = os.path.realpath(filename)
        if real.startswith(self._installation()):
            return False
        return not self._in_environment(os.path.dirname(real))

    def _installation(self) -> tuple[str, ...]:
        """The installation directories (real paths) that do not hold the project."""
        if self._installed is None:
            dirs = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
            dirs.add(os.path.dirname(os.__file__))  # the standard library
            import site  # imported at start-up (unless python -S): no cost

            dirs.update(getattr(site, "getsitepackages", list)())
            dirs.add(site.getusersitepackages())
            # sysconfig's install paths lie below the prefixes above (or the user site)
            # in every scheme CPython ships; importing it costs 2-3 ms, so its paths
            # count only when something has already imported it.
            sysconfig = sys.modules.get("sysconfig")
            if sysconfig is not None:
                paths = sysconfig.get_paths()
                dirs.update(
                    paths.get(k, "") for k in ("purelib", "platlib", "stdlib", "platstdlib")
                )
            real = {os.path.join(os.path.realpath(d), "") for d in dirs if d}
            self._installed = tuple(sorted(d for d in real if not self.real_root.startswith(d)))
        return self._installed

    def _in_environment(self, real_dir: str) -> bool:
        """Is this directory (a real path) inside a virtual or conda environment that
        lies inside the project?"""
        known = self._environments.get(real_dir)
        if known is None:
            inside = os.path.join(real_dir, "")
            if inside == self.real_root or not inside.startswith(self.real_root):
                known = False
            else:
                known = (
                    os.path.exists(os.path.join(real_dir, "pyvenv.cfg"))
                    or os.path.isdir(os.path.join(real_dir, "conda-meta"))
                    or self._in_environment(os.path.dirname(real_dir))
                )
            self._environments[real_dir] = known
        return known
