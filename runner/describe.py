"""Read-only views of the tasks: `--list`, `TASK --help`, `graph --format ...`."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .graph import Graph
    from .tasks import Param, Task

GRAPH_FORMATS = ("tree", "mermaid", "dot", "json", "html")  # html: runner/graph_html.py


def list_text(graph: Graph, tasksfile: str) -> str:
    from .errors import _short

    if not graph.tasks:
        return f"no tasks in {_short(tasksfile)}\n"
    names = graph.names()
    width = min(max(len(n) for n in names), 32)
    lines = [f"tasks in {_short(tasksfile)}:"]
    for name in names:
        t = graph.tasks[name]
        notes = []
        if t.default:
            notes.append("default")
        if t.aliases:
            notes.append("aliases: " + ", ".join(t.aliases))
        tail = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"  {name:<{width}}  {t.summary}{tail}".rstrip())
    return "\n".join(lines) + "\n"


def task_info(t: Task) -> dict[str, Any]:
    return {
        "name": t.name,
        "summary": t.summary,
        "doc": t.doc,
        "default": t.default,
        "aliases": list(t.aliases),
        "deps": list(t.deps),
        "inputs": list(t.inputs),
        "outputs": list(t.outputs),
        "env": list(t.env),
        "cache": t.cache,
        "service": t.service,
        "timeout": t.timeout,
        "retries": t.retries,
        "schedule": t.schedule,
        "params": [
            {
                "name": p.name,
                "option": p.option,
                "type": p.type.__name__,
                "required": p.required,
                "default": None if p.required else p.default,
            }
            for p in t.params
        ],
        "file": t.file,
        "line": t.line,
    }


def list_json(graph: Graph) -> str:
    import json

    return (
        json.dumps(
            {"default": graph.default, "tasks": [task_info(graph.tasks[n]) for n in graph.names()]},
            indent=2,
        )
        + "\n"
    )


def usage(t: Task) -> str:
    parts = [f"usage: runner {t.name}"]
    for p in t.params:
        if p.type is bool:
            parts.append(f"[{p.option}]")
        elif p.required:
            parts.append(f"{p.option} {p.metavar}")
        else:
            parts.append(f"[{p.option} {p.metavar}]")
    return " ".join(parts)


def _param_help(p: Param) -> str:
    if p.required:
        return "required"
    if p.type is bool:
        return (
            ("default: on; --no-" + p.option[2:] + " turns it off") if p.default else "default: off"
        )
    return f"default: {p.default!r}"


def input_counts(root: str, t: Task, skip: list[str]) -> dict[str, int]:
    """How many of the files the task's inputs match each pattern matches (an `!`
    pattern is not counted)."""
    from . import globs

    files = globs.expand(root, t.inputs, skip=skip).files if t.inputs else []
    return {
        p: sum(1 for f in files if globs.match(p, f)) for p in t.inputs if not p.startswith("!")
    }


def _inputs_text(t: Task, counts: dict[str, int] | None) -> str:
    if counts is None:
        return ", ".join(t.inputs)

    def one(p: str) -> str:
        if p not in counts:
            return p
        n = counts[p]
        return f"{p} ({'no file' if not n else f'{n} file' + ('s' if n > 1 else '')})"

    return ", ".join(one(p) for p in t.inputs)


def task_help(t: Task, graph: Graph, counts: dict[str, int] | None = None) -> str:
    """`runner TASK --help`; `counts`: how many files each input pattern matches."""
    from .errors import _short

    lines = [usage(t), ""]
    if t.doc:
        lines += [t.doc, ""]
    if t.params:
        lines.append("options:")
        w = max(len(f"{p.option} {p.metavar}".rstrip()) for p in t.params)
        for p in t.params:
            left = f"{p.option} {p.metavar}".rstrip()
            lines.append(f"  {left:<{w}}  {_param_help(p)}")
        lines.append("")
    facts = [
        ("depends on", ", ".join(t.deps)),
        ("inputs", _inputs_text(t, counts)),
        ("outputs", ", ".join(t.outputs)),
        ("env", ", ".join(t.env)),
        ("aliases", ", ".join(t.aliases)),
        ("timeout", f"{t.timeout:g}s" if t.timeout else ""),
        ("retries", str(t.retries) if t.retries else ""),
        ("schedule", t.schedule or ""),
        ("cached", "no (service)" if t.service else ("yes" if t.cache else "no")),
        ("defined at", f"{_short(t.file)}:{t.line}"),
    ]
    for key, value in facts:
        if value:
            lines.append(f"{key}: {value}")
    return "\n".join(lines).rstrip() + "\n"


def graph_text(
    graph: Graph, order: list[str], roots: list[str], fmt: str, ascii_only: bool = False
) -> str:
    if fmt == "tree":
        return _tree(graph, roots, ascii_only)
    if fmt == "mermaid":
        ids = {n: f"t{i}" for i, n in enumerate(order)}
        lines = ["graph TD", "  %% an arrow points from a task to a task it depends on"]
        for n in order:
            label = n.replace('"', "#quot;")
            lines.append(f'  {ids[n]}["{label}"]')
        for n in order:
            for d in graph.deps(n):
                lines.append(f"  {ids[n]} --> {ids[d]}")
        return "\n".join(lines) + "\n"
    if fmt == "dot":

        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "digraph tasks {",
            "  // an edge points from a task to a task it depends on",
            "  rankdir=LR;",
            "  node [shape=box];",
        ]
        for n in order:
            lines.append(f"  {q(n)};")
        for n in order:
            for d in graph.deps(n):
                lines.append(f"  {q(n)} -> {q(d)};")
        lines.append("}")
        return "\n".join(lines) + "\n"
    if fmt == "json":
        import json

        return (
            json.dumps(
                {
                    "order": order,
                    "tasks": {
                        n: {
                            "deps": list(graph.deps(n)),
                            "summary": graph.tasks[n].summary,
                            "inputs": list(graph.tasks[n].inputs),
                            "outputs": list(graph.tasks[n].outputs),
                        }
                        for n in order
                    },
                },
                indent=2,
            )
            + "\n"
        )
    raise ValueError(fmt)


def _tree(graph: Graph, roots: list[str], ascii_only: bool) -> str:
    tee, last, bar = ("|-- ", "`-- ", "|   ") if ascii_only else ("├── ", "└── ", "│   ")
    lines: list[str] = []
    shown: set[str] = set()

    # (name, prefix, connector, prefix for its children), depth first, iteratively:
    # a chain of thousands of tasks must not hit Python's recursion limit.
    stack = [(r, "", "", "") for r in reversed(roots)]
    while stack:
        name, prefix, connector, child_prefix = stack.pop()
        deps = graph.deps(name)
        again = name in shown and bool(deps)
        lines.append(f"{prefix}{connector}{name}" + (" (see above)" if again else ""))
        if again:
            continue
        shown.add(name)
        for i in reversed(range(len(deps))):
            end = i == len(deps) - 1
            stack.append(
                (deps[i], prefix + child_prefix, last if end else tee, "    " if end else bar)
            )
    return "\n".join(lines) + "\n"
