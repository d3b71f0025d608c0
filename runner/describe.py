"""Read-only views of the tasks: `--list`, `TASK --help`, `graph --format ...`."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .graph import Graph
    from .tasks import Param, Task

GRAPH_FORMATS = ("tree", "mermaid", "dot", "json", "html")  # html: runner/graph_html.py


def list_text(graph: Graph, tasksfile: str, origins: dict[str, str] | None = None) -> str:
    """The tasks with their summaries: those without a namespace first, then one
    group per namespace (`docs:`), then plugin tasks without one under their plugin.
    `origins`: the plugin that added each plugin task."""
    from .errors import _short

    if not graph.tasks:
        return f"no tasks in {_short(tasksfile)}\n"
    names = graph.names()
    width = min(max(len(n) for n in names), 32)
    lines = [f"tasks in {_short(tasksfile)}:"]
    for header, members in _groups(names, origins or {}):
        if header:
            lines += ["", header]
        lines += [_list_line(graph.tasks[n], width) for n in members]
    return "\n".join(lines) + "\n"


def namespace_text(graph: Graph, namespace: str, origins: dict[str, str] | None = None) -> str:
    """`runner docs` when only `docs:*` tasks exist: those tasks."""
    members = graph.namespace(namespace)
    width = min(max(len(n) for n in members), 32)
    lines = [f"tasks in namespace {namespace}: (run them all with `runner '{namespace}:*'`)"]
    lines += [_list_line(graph.tasks[n], width) for n in members]
    return "\n".join(lines) + "\n"


def _list_line(t: Task, width: int) -> str:
    notes = []
    if t.default:
        notes.append("default")
    if t.aliases:
        notes.append("aliases: " + ", ".join(t.aliases))
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"  {t.name:<{width}}  {t.summary}{tail}".rstrip()


def _groups(names: list[str], origins: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(header, task names) in listing order; the first group has no header."""
    top: list[str] = []
    spaces: dict[str, list[str]] = {}
    plugins: dict[str, list[str]] = {}
    for n in names:
        if ":" in n:
            spaces.setdefault(n.split(":", 1)[0], []).append(n)
        elif n in origins:
            plugins.setdefault(origins[n], []).append(n)
        else:
            top.append(n)
    groups = [("", top)] if top else []
    for ns in sorted(spaces):
        members = spaces[ns]
        by = sorted({origins[n] for n in members if n in origins})
        note = f" (plugin {', '.join(by)})" if by and all(n in origins for n in members) else ""
        groups.append((f"{ns}:{note}", members))
    for plugin in sorted(plugins):
        groups.append((f"plugin {plugin}:", plugins[plugin]))
    return groups


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
        "extra_args": t.extra is not None,
        "cwd": t.cwd,
        "dotenv": list(t.dotenv),
        "tools": list(t.tools),
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
    if t.extra is not None:
        parts.append(f"[-- {t.extra.upper()}...]")
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
        ("dotenv", ", ".join(t.dotenv)),
        ("tools", ", ".join(t.tools)),
        ("working directory", t.cwd or ""),
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
