"""A task's code, as a digest: what `runner` counts as the task's own code.

Its function, and — transitively — the functions and classes of the project it refers
to by global name, the source of the project's modules it uses (and of the project
modules those use), and the simple constants it reads. Library code (the standard
library, installed packages) counts by name only: an upgrade of a tool is not a change
of the task. A docstring is not code.
"""

from __future__ import annotations

import os
import sys
import types

import blake3

from .fingerprint import digest, hash_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .tasks import Task


class CodeDigest:
    """What a task's code depends on: its function, and — transitively — the functions
    of the project it refers to by global name, the source of the project's modules it
    uses, and the simple constants (strings, numbers, tuples, dicts ...) it reads.
    Library code (the standard library, installed packages) is taken by name only: an
    upgrade of a tool is not a change of the task."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(os.path.abspath(root), "")
        self._module_files: dict[str, bytes] = {}
        self._local: dict[str, bool] = {}
        self._library: dict[int, tuple[Any, bytes]] = {}  # id -> (object, what it counts as)
        self._outside = tuple(
            os.path.join(p, "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} if p
        )

    def local(self, filename: str | None) -> bool:
        """Is this file the project's own code (not the standard library, not an
        installed package, even one in a virtual environment inside the project)?"""
        if not filename or not filename.startswith(self.root):
            return False
        known = self._local.get(filename)
        if known is None:
            known = self._local[filename] = (
                not (filename.startswith(self._outside) and not self.root.startswith(self._outside))
                and "site-packages" not in filename
                and "dist-packages" not in filename
            )
        return known

    def of_task(self, task: Task) -> bytes:
        h = blake3.blake3()
        seen: set[int] = set()
        self._function(task.fn, h, seen)
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
        h.update(repr(spec).encode())
        return h.digest()

    def _function(self, fn: Any, h: Any, seen: set[int]) -> None:
        code = getattr(fn, "__code__", None)
        if code is None or id(code) in seen:
            return
        seen.add(id(code))
        g = getattr(fn, "__globals__", {})
        self._code(code, g, h, seen, getattr(fn, "__doc__", None))
        defaults = getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None)
        h.update(_NO_DEFAULTS if defaults == (None, None) else _canon(defaults).encode())
        cells = getattr(fn, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, cells, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            h.update(b"free:" + name.encode())
            self._value(value, h, seen)

    def _code(
        self, code: Any, g: dict[str, Any], h: Any, seen: set[int], doc: str | None = None
    ) -> None:
        h.update(code.co_code)
        consts = []
        for i, c in enumerate(code.co_consts):
            if hasattr(c, "co_code"):
                self._code(c, g, h, seen)
            elif not (i == 0 and doc is not None and c == doc):  # a docstring is no code
                consts.append(c if type(c) is str else _canon(c))
        h.update(
            repr(
                (code.co_flags, code.co_argcount, code.co_kwonlyargcount, code.co_names, consts)
            ).encode()
        )
        for name in code.co_names:
            if name in g:
                h.update(b"global:" + name.encode())
                self._value(g[name], h, seen)

    def _value(self, v: Any, h: Any, seen: set[int]) -> None:
        known = self._library.get(id(v))
        if known is not None and known[0] is v:
            h.update(known[1])  # a library function, named before in this run
            return
        if type(v).__name__ == "Task" and hasattr(v, "fn"):
            v = v.fn
        if isinstance(v, types.FunctionType):
            if self.local(v.__code__.co_filename):
                self._function(v, h, seen)
            else:
                name = f"fn:{v.__module__}.{v.__qualname__}".encode()
                self._library[id(v)] = (v, name)
                h.update(name)
        elif isinstance(v, types.ModuleType):
            h.update(f"module:{v.__name__}".encode())
            if self.local(getattr(v, "__file__", None)):
                h.update(self._module_digest(v))
        elif isinstance(v, type):
            mod = sys.modules.get(v.__module__)
            h.update(f"class:{v.__module__}.{v.__qualname__}".encode())
            if self.local(getattr(mod, "__file__", None)) and id(v) not in seen:
                seen.add(id(v))
                for attr in vars(v).values():
                    if isinstance(attr, (staticmethod, classmethod)):
                        attr = attr.__func__
                    if isinstance(attr, types.FunctionType):
                        self._function(attr, h, seen)
        elif getattr(v, "__wrapped__", None) is not None and id(v) not in seen:
            # A decorated function (functools.wraps, lru_cache ...): the code it wraps.
            seen.add(id(v))
            h.update(f"wrapper:{type(v).__qualname__}".encode())
            self._value(v.__wrapped__, h, seen)
        elif type(v).__name__ == "partial" and type(v).__module__ == "functools":
            h.update(b"partial:" + _canon((v.args, v.keywords)).encode())
            self._value(v.func, h, seen)
        else:
            h.update(_canon(v).encode())

    def _module_digest(self, module: types.ModuleType) -> bytes:
        """The source of a project module and of every project module it uses —
        imports, or takes functions and classes from — transitively: a task that calls
        `helpers.f()` depends on all of that. Computed once per module per run."""
        name = module.__name__
        found = self._module_files.get(name)
        if found is not None:
            return found
        files: dict[str, bytes] = {}
        stack = [module]
        while stack:
            m = stack.pop()
            path = getattr(m, "__file__", None)
            if path is None or not self.local(path) or path in files:
                continue
            try:
                files[path] = hash_file(path)
            except OSError:
                files[path] = b"missing"
            for value in list(vars(m).values()):
                if isinstance(value, types.ModuleType):
                    stack.append(value)
                elif isinstance(value, (type, types.FunctionType)):
                    owner = sys.modules.get(getattr(value, "__module__", "") or "")
                    if owner is not None:
                        stack.append(owner)
        d = digest(repr(sorted(files.items())).encode())
        self._module_files[name] = d
        return d


_NO_DEFAULTS = b"tuple(None,None)"  # what _canon((None, None)) is


def _canon(v: Any, depth: int = 0) -> str:
    """A deterministic text for a constant (sets sorted: their order varies between
    runs); objects that are not plain data are known by their type only."""
    if depth > 6:
        return "…"
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        r = repr(v)
        return r if len(r) <= 100_000 else r[:100_000] + f"…{len(r)}"
    if isinstance(v, (tuple, list)):
        inner = ",".join(_canon(x, depth + 1) for x in v[:10_000])
        return f"{type(v).__name__}({inner})"
    if isinstance(v, (set, frozenset)):
        return "set(" + ",".join(sorted(_canon(x, depth + 1) for x in v)) + ")"
    if isinstance(v, dict):
        items = list(v.items())[:10_000]
        return (
            "dict("
            + ",".join(f"{_canon(k, depth + 1)}:{_canon(x, depth + 1)}" for k, x in items)
            + ")"
        )
    if v is Ellipsis:
        return "..."
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
            return name + _canon(d, depth + 1)
    return name


_VALUE_TYPES = {"pathlib", "enum", "datetime", "decimal", "fractions", "uuid", "ipaddress"}


def _is_value_type(t: type) -> bool:
    """Types whose repr is their value: paths, enum members, dataclasses, dates,
    decimals... Other objects count by type only: a repr may hold what changes
    between runs for no reason (a terminal's width, a time)."""
    if hasattr(t, "__dataclass_fields__"):
        return True
    return any(c.__module__.partition(".")[0] in _VALUE_TYPES for c in t.__mro__[:-1])
