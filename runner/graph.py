"""The task graph: names and aliases, dependency resolution, selection, cycles.

A `Graph` is built from the tasks a tasksfile defined. Building it checks names: no
duplicates, and every dep names a task (a typo in `deps` is reported when the tasksfile
loads, `--list` included, not when that task first runs). Cycles are looked for when
tasks are selected: a run checks exactly the part of the graph it needs.
"""

from __future__ import annotations

from .errors import CycleError, TasksfileError, UnknownTaskError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .tasks import Task


class Graph:
    """Tasks by name, with their resolved dependencies."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self.tasks: dict[str, Task] = {}
        self.aliases: dict[str, str] = {}
        self.default: str | None = None
        for t in tasks:
            self._add(t)
        self._deps: dict[str, tuple[str, ...]] = {}
        self._check_deps()

    def _check_deps(self) -> None:
        """Every dep names a task (or an alias): otherwise one error at the task's
        definition, with the closest names."""
        known = self.tasks.keys() | self.aliases.keys()
        for t in self.tasks.values():
            for d in t.deps:
                if d not in known and self._lookup(d) is None:
                    hint = UnknownTaskError(d, known, needed_by=t.name)
                    raise TasksfileError(hint.message, file=t.file, line=t.line)

    def _add(self, t: Task) -> None:
        clash = self.tasks.get(t.name) or self.tasks.get(self.aliases.get(t.name, ""))
        if clash is not None:
            raise TasksfileError(
                f"task '{t.name}' is defined twice (first at {_where(clash)})",
                file=t.file,
                line=t.line,
            )
        for a in t.aliases:
            other = self.tasks.get(a) or self.tasks.get(self.aliases.get(a, ""))
            if other is not None:
                raise TasksfileError(
                    f"alias '{a}' of task '{t.name}' is already the name of "
                    f"task '{other.name}' ({_where(other)})",
                    file=t.file,
                    line=t.line,
                )
        if t.default:
            if self.default is not None:
                first = self.tasks[self.default]
                raise TasksfileError(
                    f"tasks '{first.name}' ({_where(first)}) and '{t.name}' "
                    "are both marked default=True; keep one",
                    file=t.file,
                    line=t.line,
                )
            self.default = t.name
        self.tasks[t.name] = t
        for a in t.aliases:
            self.aliases[a] = t.name

    def __contains__(self, name: str) -> bool:
        return self._lookup(name) is not None

    def __len__(self) -> int:
        return len(self.tasks)

    def names(self) -> list[str]:
        return sorted(self.tasks)

    def resolve(self, name: str, *, needed_by: str | None = None) -> Task:
        """The task called `name` (or aliased so); UnknownTaskError with did-you-mean."""
        t = self._lookup(name)
        if t is None:
            raise UnknownTaskError(name, list(self.tasks) + list(self.aliases), needed_by=needed_by)
        return t

    def namespace(self, prefix: str) -> list[str]:
        """The tasks of namespace `prefix` (`docs` or `docs:`): `docs:build`,
        `docs:api:build`, ..., sorted."""
        start = prefix.rstrip(":") + ":"
        return sorted(n for n in self.tasks if n.startswith(start))

    def matching(self, pattern: str) -> list[str]:
        """The tasks whose names match a wildcard pattern (`docs:*`, `test-py3.?`;
        `*` crosses `:` as well), sorted; UsageError when none does."""
        from fnmatch import fnmatchcase

        found = sorted(n for n in self.tasks if fnmatchcase(n, pattern))
        if not found:
            from .errors import UsageError

            raise UsageError(f"no task matches {pattern!r}")
        return found

    def _lookup(self, name: str) -> Task | None:
        """The task called `name`, or aliased so; `never_makes` finds `never-makes`
        (the function's own spelling of the name it was given)."""
        t = self.tasks.get(name) or self.tasks.get(self.aliases.get(name, ""))
        if t is None and "_" in name:
            dashed = name.replace("_", "-")
            t = self.tasks.get(dashed) or self.tasks.get(self.aliases.get(dashed, ""))
        return t

    def deps(self, name: str) -> tuple[str, ...]:
        """The canonical names of a task's direct dependencies."""
        found = self._deps.get(name)
        if found is None:
            seen: dict[str, None] = {}  # in order, each once (an alias and its name too)
            for d in self.tasks[name].deps:
                seen[self.resolve(d, needed_by=name).name] = None
            found = self._deps[name] = tuple(seen)
        return found

    def select(self, targets: Iterable[str]) -> list[str]:
        """Every task the targets need, deps first (a valid run order, deterministic:
        each task's deps in the order they were declared). Raises on an unknown name
        or a cycle."""
        roots = [self.resolve(t).name for t in targets]
        closure: dict[str, tuple[str, ...]] = {}
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n not in closure:
                closure[n] = self.deps(n)
                stack.extend(closure[n])
        self._check_cycles(closure)
        return _postorder(roots, closure)

    def _check_cycles(self, closure: dict[str, tuple[str, ...]]) -> None:
        from graphlib import CycleError as GraphlibCycle
        from graphlib import TopologicalSorter

        try:
            TopologicalSorter(closure).prepare()
        except GraphlibCycle as e:
            # graphlib lists the cycle so that each node comes before the next one in
            # the run order; reversed, each task depends on the next, as users read it.
            cycle = list(reversed(e.args[1]))[:-1]
            k = cycle.index(min(cycle))
            cycle = cycle[k:] + cycle[:k]
            raise CycleError(cycle + [cycle[0]]) from None

    def dependents(self, names: Iterable[str], order: list[str]) -> set[str]:
        """`names` and every task of `order` (a run order, deps first) that depends on
        one of them, transitively."""
        hit = set(names)
        for n in order:
            if n not in hit and any(d in hit for d in self.deps(n)):
                hit.add(n)
        return hit

    def levels(self, order: list[str]) -> dict[str, int]:
        """Each task's depth: 0 for tasks without deps, 1 + the deepest dep otherwise."""
        depth: dict[str, int] = {}
        for n in order:
            depth[n] = 1 + max((depth[d] for d in self.deps(n)), default=-1)
        return depth

    def is_chain(self, order: list[str]) -> bool:
        """True when no two of these tasks can ever run at the same time."""
        depth = self.levels(order)
        return len(set(depth.values())) == len(order)


def _postorder(roots: list[str], closure: dict[str, tuple[str, ...]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()
    for root in roots:
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            n, i = stack.pop()
            if n in done:
                continue
            deps = closure[n]
            if i < len(deps):
                stack.append((n, i + 1))
                if deps[i] not in done:
                    stack.append((deps[i], 0))
            else:
                done.add(n)
                order.append(n)
    return order


def _where(t: Task) -> str:
    from .errors import _short

    return f"{_short(t.file)}:{t.line}"
