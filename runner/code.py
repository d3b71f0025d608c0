"""A task's code, as a digest: what `runner` counts as the task's own code.

Starting from the task's function, the digest takes in (README, "What makes a task run
again", says the same):

- the function's bytecode, constants, default argument values and the values it closes
  over — not its docstring, comments or line numbers;
- every global name its code reads: a simple constant by value (strings, numbers, paths,
  enum members, dataclass values, and tuples, lists, dicts and sets of those); a function
  of the project (the tasksfile, its local modules) by its code, transitively; a class
  of the project by the functions and constants of its class body and of its local base
  classes; an object of a project class by that class; a function or class held in a
  constant (`HANDLERS = {"x": upper}`) as itself;
- the local modules it uses: one read as a global name by its source and the sources
  of the local modules it imports, transitively, and by what the task's code reads
  from it (`helpers.suffix` as the function it is); one the code imports (in the
  task's body, in a helper) by its source and those of the local modules its compiled
  code imports, transitively, loaded or not;
- code outside the project (the standard library, installed packages, a virtual
  environment) by name only: an upgrade of a tool is not a change of the task.

Nothing is run to find this: a module not imported yet is found as the import would
find it, and its compiled code is read, not executed (runner.modules).
"""

from __future__ import annotations

import sys
import types

import blake3

from . import modules
from .fingerprint import digest, hash_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .tasks import Task


class _Walk:
    """One digest as it is taken: the hash it feeds, the code objects and classes
    already taken (each once; no loops), when asked for, the project's files it read,
    and whether the functions and classes it meets are taken as digested once per run
    (`shared`: only a task's own walk; inside one of those digests everything is taken
    in place, so that each is the same whichever task met it first)."""

    __slots__ = ("h", "seen", "files", "shared")

    def __init__(self, h: Any, seen: set[int], files: set[str] | None, shared: bool) -> None:
        self.h = h
        self.seen = seen
        self.files = files
        self.shared = shared


class _Taken:
    """A function or class of the project, digested on its own: what it counts as and
    the project's files that took in."""

    __slots__ = ("obj", "digest", "files")

    def __init__(self, obj: Any, digest_: bytes, files: frozenset[str]) -> None:
        self.obj = obj  # kept, so that its id is not reused while this is remembered
        self.digest = digest_
        self.files = files


class _Closure:
    """A local module and the local modules it imports, transitively: the digest of
    their sources, and their files."""

    __slots__ = ("digest", "files")

    def __init__(self, digest_: bytes, files: frozenset[str]) -> None:
        self.digest = digest_
        self.files = files


class CodeDigest:
    """Digests of tasks' code (see the module's docstring) for one run: what it learns
    of modules and library names is kept for the next task."""

    def __init__(self, root: str) -> None:
        self.project = modules.ProjectFiles(root)
        self.local = self.project.local
        self._finder = modules.Finder()
        # By (module name, read from its compiled code rather than its namespace):
        self._closures: dict[tuple[str, bool], _Closure | None] = {}
        self._edges: dict[tuple[str, bool], tuple[str | None, tuple[str, ...]]] = {}
        self._library: dict[int, tuple[Any, bytes]] = {}  # id -> (object, what it counts as)
        self._taken: dict[int, _Taken] = {}

    def of_task(self, task: Task) -> bytes:
        return self._walk(task, None)

    def files_of(self, task: Task) -> set[str]:
        """The project's files that the task's code digest reads (absolute paths): the
        files of its functions and classes, and of the modules whose sources it takes."""
        files: set[str] = set()
        self._walk(task, files)
        return files

    def loaded_files(self) -> set[str]:
        """The files of the project's modules that are loaded now (absolute paths)."""
        found = set()
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if isinstance(f, str) and self.local(f):
                found.add(f)
        return found

    def _walk(self, task: Task, files: set[str] | None) -> bytes:
        w = _Walk(blake3.blake3(), set(), files, shared=True)
        self._function(task.fn, w)
        spec: tuple[object, ...] = (
            task.deps,
            task.inputs,
            task.outputs,
            task.env,
            task.cache,
            task.service,
        )
        if task.cwd or task.dotenv or task.tools:  # (only then: other keys stay as they were)
            spec += (task.cwd, task.dotenv, task.tools)
        w.h.update(repr(spec).encode())
        return w.h.digest()

    # ------------------------------------------------------------ code
    def _function(self, fn: Any, w: _Walk) -> None:
        code = getattr(fn, "__code__", None)
        if code is None or id(code) in w.seen:
            return
        w.seen.add(id(code))
        g = getattr(fn, "__globals__", {})
        self._code(code, g, w, getattr(fn, "__doc__", None))
        defaults = getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None)
        h = w.h
        h.update(_NO_DEFAULTS if defaults == (None, None) else self._canon(defaults, w).encode())
        cells = getattr(fn, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, cells, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            h.update(b"free:" + name.encode())
            self._value(value, w)

    def _code(self, code: Any, g: dict[str, Any], w: _Walk, doc: str | None = None) -> None:
        h = w.h
        raw = code.co_code
        h.update(raw)
        consts = []
        for i, c in enumerate(code.co_consts):
            if hasattr(c, "co_code"):
                self._code(c, g, w)
            elif not (i == 0 and doc is not None and c == doc):  # a docstring is no code
                consts.append(c if type(c) is str else _canon(c))
        names = code.co_names
        h.update(
            repr((code.co_flags, code.co_argcount, code.co_kwonlyargcount, names, consts)).encode()
        )
        if w.files is not None and self.local(code.co_filename):
            w.files.add(code.co_filename)
        for name in names:
            if name in g:
                h.update(b"global:" + name.encode())
                value = g[name]
                self._value(value, w)
                if type(value) is types.ModuleType:
                    self._attributes(value, names, w)
        if modules.may_import(raw):
            for name in modules.imported_modules(code, g.get("__package__")):
                self._import(name, w)

    def _import(self, name: str, w: _Walk) -> None:
        """A module the code imports: by name, and a local one by its source and the
        sources of the local modules its compiled code imports, transitively (read as
        the import would find them, never run). Whether it is loaded already (by the
        tasksfile, by runner itself, by an earlier build of `runner watch`) makes no
        difference."""
        w.h.update(b"import:" + name.encode())
        closure = self._closure(name, by_code=True)
        if closure is not None:
            w.h.update(closure.digest)
            if w.files is not None:
                w.files.update(closure.files)

    def _attributes(
        self, module: types.ModuleType, names: tuple[str, ...], w: _Walk, depth: int = 0
    ) -> None:
        """What code that reads these names takes from a local module: for
        `helpers.suffix()`, the function helpers.suffix; for `tools.naming.suffix()`,
        the function of tools.naming."""
        if depth > 4 or not self.local(getattr(module, "__file__", None)):
            return
        space = vars(module)
        for n in names:
            value = space.get(n, space)
            if value is space or value is module:
                continue
            w.h.update(b"attr:" + n.encode())
            self._value(value, w)
            if type(value) is types.ModuleType:
                self._attributes(value, names, w, depth + 1)

    # ------------------------------------------------------------ values
    def _value(self, v: Any, w: _Walk) -> None:
        h = w.h
        t = type(v)
        if t in _SCALARS:
            h.update(_canon(v).encode())
            return
        if t in _CONTAINERS:
            h.update(self._canon(v, w).encode())
            return
        known = self._library.get(id(v))
        if known is not None and known[0] is v:
            h.update(known[1])  # a library function, named before in this run
            return
        if type(v).__name__ == "Task" and hasattr(v, "fn"):
            v = v.fn
        if isinstance(v, types.FunctionType):
            if not self.local(v.__code__.co_filename):
                name = f"fn:{v.__module__}.{v.__qualname__}".encode()
                self._library[id(v)] = (v, name)
                h.update(name)
            elif w.shared:
                self._once(v, w, self._function)
            else:
                self._function(v, w)
        elif isinstance(v, types.ModuleType):
            h.update(f"module:{v.__name__}".encode())
            if self.local(getattr(v, "__file__", None)):
                closure = self._closure(v.__name__, v, by_code=False)
                if closure is not None:
                    h.update(closure.digest)
                    if w.files is not None:
                        w.files.update(closure.files)
        elif isinstance(v, type):
            self._class_value(v, w)
        elif isinstance(v, _BUILTINS):
            h.update(f"builtin:{getattr(v, '__module__', None)}.{v.__qualname__}".encode())
        elif isinstance(v, types.MethodType):
            h.update(b"method:")
            self._value(v.__func__, w)
            owner = v.__self__  # an object, or for a class method, the class
            self._class_value(owner if isinstance(owner, type) else type(owner), w)
        elif _wrapped(v) is not None:
            # A decorated function (functools.wraps, lru_cache ...): the code it wraps.
            h.update(f"wrapper:{type(v).__qualname__}".encode())
            if id(v) not in w.seen:
                w.seen.add(id(v))
                self._value(_wrapped(v), w)
        elif _is_partial(v):
            h.update(b"partial:" + self._canon((v.args, v.keywords), w).encode())
            self._value(v.func, w)
        else:
            h.update(self._canon(v, w).encode())
            if self._class_is_local(type(v)):
                self._class_value(type(v), w)  # an object of a project class: its code

    def _once(self, v: Any, w: _Walk, take: Callable[[Any, _Walk], None]) -> None:
        """A function or class of the project, as digested on its own once per run:
        the tasks of a tasksfile share their helpers."""
        found = self._taken.get(id(v))
        if found is None or found.obj is not v:
            sub = _Walk(blake3.blake3(), set(), set(), shared=False)
            take(v, sub)
            found = _Taken(v, sub.h.digest(), frozenset(sub.files or ()))
            self._taken[id(v)] = found
        w.h.update(found.digest)
        if w.files is not None:
            w.files.update(found.files)

    def _class_value(self, cls: type, w: _Walk) -> None:
        if w.shared and self._class_is_local(cls):
            self._once(cls, w, self._class)
        else:
            self._class(cls, w)

    def _class(self, cls: type, w: _Walk) -> None:
        """A class: its name; for a class of the project, also the functions and
        constants of its class body, and its local base classes."""
        w.h.update(f"class:{cls.__module__}.{cls.__qualname__}".encode())
        if id(cls) in w.seen or not self._class_is_local(cls):
            return
        w.seen.add(id(cls))
        if w.files is not None:
            w.files.add(sys.modules[cls.__module__].__file__)  # type: ignore[arg-type]
        for name, attr in list(vars(cls).items()):
            if name in _CLASS_BOOKKEEPING:
                continue
            w.h.update(b"attr:" + name.encode())
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, property):
                for f in (attr.fget, attr.fset, attr.fdel):
                    self._value(f, w)
            else:
                self._value(attr, w)
        for base in cls.__bases__:
            if base is not object:
                self._class_value(base, w)

    def _class_is_local(self, cls: type) -> bool:
        module = sys.modules.get(getattr(cls, "__module__", None) or "")
        return self.local(getattr(module, "__file__", None))

    def _canon(self, v: Any, w: _Walk) -> str:
        """`_canon(v)`, with the functions, classes and modules a constant holds taken
        as code. Each is taken on its own, from what was taken before the constant: the
        order of a set of functions (by their addresses) must not matter."""
        before: set[int] = set()

        def code_of(x: Any) -> str:
            if not before:
                before.update(w.seen)  # w.seen is not changed while the constant is read
            sub = _Walk(blake3.blake3(), set(before), w.files, w.shared)
            self._value(x, sub)
            return "code:" + sub.h.hexdigest()

        return _canon(v, 0, code_of)

    # ------------------------------------------------------------ modules
    def _closure(
        self, name: str, module: types.ModuleType | None = None, *, by_code: bool
    ) -> _Closure | None:
        """The sources of a local module and of every local module it imports, at its
        top or inside its functions, transitively: a task that uses `helpers` depends
        on all of that. `by_code`: each module's imports read from its compiled code;
        otherwise, for a loaded module, from its namespace and its functions (no file
        read but its source). None for a module that is not the project's or is
        nowhere. Computed once per module per run."""
        key = (name, by_code)
        if key in self._closures:
            return self._closures[key]
        files: dict[str, bytes] = {}
        stack = [name]
        visited: set[str] = set()
        while stack:
            n = stack.pop()
            if n in visited:
                continue
            visited.add(n)
            path, imports = self._module_edges(n, module if n == name else None, by_code)
            if path is None or path in files:
                continue
            try:
                files[path] = hash_file(path)
            except OSError:
                files[path] = b"missing"
            stack.extend(imports)
        found = None
        if files:
            found = _Closure(digest(repr(sorted(files.items())).encode()), frozenset(files))
        self._closures[key] = found
        return found

    def _module_edges(
        self, name: str, module: types.ModuleType | None, by_code: bool
    ) -> tuple[str | None, tuple[str, ...]]:
        """A module's file (None if it is not the project's) and the modules it
        imports."""
        loaded = None if by_code else module if module is not None else sys.modules.get(name)
        key = (name, loaded is None)
        known = self._edges.get(key)
        if known is None:
            known = self._code_edges(name) if loaded is None else self._loaded_edges(loaded)
            self._edges[key] = known
        return known

    def _loaded_edges(self, m: types.ModuleType) -> tuple[str | None, tuple[str, ...]]:
        """A loaded module's imports: the modules its namespace holds, the modules of
        the functions and classes it holds, and what its own functions import."""
        path = getattr(m, "__file__", None)
        if not self.local(path):
            return None, ()
        own = m.__name__
        package = getattr(m, "__package__", None)
        imports: list[str] = []
        for value in list(vars(m).values()):
            if isinstance(value, types.ModuleType):
                imports.append(value.__name__)
            elif isinstance(value, (type, types.FunctionType)):
                owner = getattr(value, "__module__", None)
                if isinstance(owner, str):
                    imports.append(owner)
                    if owner == own:
                        for code in _code_of(value):
                            imports += modules.imported_modules(code, package, nested=True)
        return path, tuple(imports)

    def _code_edges(self, name: str) -> tuple[str | None, tuple[str, ...]]:
        """A module found as the import would find it, its imports read from its
        compiled code (as the import would load it: the __pycache__ file when Python
        keeps one), which is not run."""
        spec = self._finder.spec(name)
        path = spec.origin if spec is not None and spec.has_location else None
        if spec is None or not self.local(path):
            return None, ()
        get_code = getattr(spec.loader, "get_code", None)
        try:
            code = get_code(name) if get_code is not None else None
        except Exception:  # a syntax error: its source still counts, it imports nothing
            code = None
        if code is None:
            return path, ()
        return path, tuple(modules.imported_modules(code, spec.parent, nested=True))


# Entries of a class's namespace that say where and how it was defined, not what it does.
_CLASS_BOOKKEEPING = frozenset(
    ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__firstlineno__")
)

_BUILTINS = (types.BuiltinFunctionType, types.MethodWrapperType)


def _code_of(value: Any) -> list[Any]:
    """The code objects of a function, or of the functions a class body defines."""
    if isinstance(value, types.FunctionType):
        return [value.__code__]
    found = []
    for attr in list(vars(value).values()):
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property):
            found += [f.__code__ for f in (attr.fget, attr.fset, attr.fdel) if f is not None]
        elif isinstance(attr, types.FunctionType):
            found.append(attr.__code__)
    return found


def _wrapped(v: Any) -> Any:
    """What a decorated function wraps (functools.wraps, lru_cache): `__wrapped__` as
    stored on it, never one that a `__getattr__` makes up (a proxy's, a mock's)."""
    try:
        d = object.__getattribute__(v, "__dict__")
    except AttributeError:
        return None
    return d.get("__wrapped__") if isinstance(d, dict) else None


def _is_partial(v: Any) -> bool:
    t = type(v)
    return t.__name__ == "partial" and t.__module__ == "functools"


_CODE_TYPES = (types.FunctionType, types.ModuleType, type, types.MethodType, *_BUILTINS)


def _is_code(v: Any) -> bool:
    """Is this what `CodeDigest._value` takes as code, never as a constant?"""
    return (
        isinstance(v, _CODE_TYPES)
        or (type(v).__name__ == "Task" and hasattr(v, "fn"))
        or _wrapped(v) is not None
        or _is_partial(v)
    )


_NO_DEFAULTS = b"tuple(None,None)"  # what _canon((None, None)) is
_SCALARS = frozenset((str, int, float, bool, type(None), bytes, complex))
_CONTAINERS = frozenset((tuple, list, dict, set, frozenset))


def _canon(v: Any, depth: int = 0, code: Callable[[Any], str] | None = None) -> str:
    """A deterministic text for a constant (sets sorted: their order varies between
    runs); objects that are not plain data are known by their type only, except that
    with `code`, the functions, classes and modules in it are what `code` makes of
    them."""
    if depth > 6:
        return "…"
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        r = repr(v)
        return r if len(r) <= 100_000 else r[:100_000] + f"…{len(r)}"
    if isinstance(v, (tuple, list)):
        inner = ",".join(_canon(x, depth + 1, code) for x in v[:10_000])
        return f"{type(v).__name__}({inner})"
    if isinstance(v, (set, frozenset)):
        return "set(" + ",".join(sorted(_canon(x, depth + 1, code) for x in v)) + ")"
    if isinstance(v, dict):
        items = list(v.items())[:10_000]
        return (
            "dict("
            + ",".join(
                f"{_canon(k, depth + 1, code)}:{_canon(x, depth + 1, code)}" for k, x in items
            )
            + ")"
        )
    if v is Ellipsis:
        return "..."
    if code is not None and _is_code(v):
        return code(v)
    t = type(v)
    name = f"<{t.__module__}.{t.__qualname__}>"
    if _is_value_type(t):
        try:
            r = repr(v)
        except Exception:
            r = ""
        if " at 0x" not in r:  # an address would change every run
            return name + (r if len(r) <= 100_000 else r[:100_000] + f"…{len(r)}")
        d = getattr(v, "__dict__", None)
        if isinstance(d, dict):
            return name + _canon(d, depth + 1, code)
    return name


_VALUE_TYPES = {"pathlib", "enum", "datetime", "decimal", "fractions", "uuid", "ipaddress"}


def _is_value_type(t: type) -> bool:
    """Types whose repr is their value: paths, enum members, dataclasses, dates,
    decimals... Other objects count by type only: a repr may hold what changes
    between runs for no reason (a terminal's width, a time)."""
    if hasattr(t, "__dataclass_fields__"):
        return True
    return any(c.__module__.partition(".")[0] in _VALUE_TYPES for c in t.__mro__[:-1])
