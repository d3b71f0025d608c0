"""The command line: argv in, an exit code out. `main(argv, stdout, stderr)` is a plain
function (tests call it); only the console script and `python -m runner` exit with it.

    runner [OPTIONS] [TASK [TASK-OPTIONS]]...
    runner graph|init|... (built-in commands; a task of the same name wins, except for
    the two-word commands `ci github` and `cache info|clean|prune`)
"""

from __future__ import annotations

import os
import sys

from . import __version__
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TASK_FAILED,
    StoreError,
    UsageError,
    UserError,
    did_you_mean,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from .graph import Graph
    from .loader import Project

HELP = """\
usage: runner [OPTIONS] [TASK [TASK-OPTIONS]]...
       runner graph [TASK...] [--format tree|mermaid|dot|json|html] [--output PATH]
       runner hash TASK [TASK-OPTIONS]
       runner watch TASK [TASK-OPTIONS] [--run 'CMD'] [--restart-build] [--clear]
       runner history [--task TASK] [--limit N] [--json]
       runner audit TASK...   (the same as runner --audit -B TASK...)
       runner ci github [TASK...] [--output PATH] [--check]
       runner cache info|clean|prune [--max-size SIZE] [--older-than AGE]
       runner init

Run tasks from tasksfile.py and the tasks they depend on. With no TASK, run the
default task, or list the tasks when there is none.

options:
  -l, --list            list the tasks (--json for machines)
  -f, --file PATH       the tasksfile (default: tasksfile.py here or in a parent)
  -C DIR                run as if started in DIR
  -j, --jobs N          run up to N tasks at once (default: the number of CPUs)
  -B, --force           run tasks even when they are up to date
  -n, --dry-run         show what would run, and why, without running it
  -k, --keep-going      after a failure, go on with what does not depend on it
  --since REF           only tasks whose inputs or code changed since git REF
  --no-cache            neither read nor write the cache
  --remote-cache URL    share the cache through URL
  -v, --verbose         say why each task runs; tracebacks for errors
  -q, --quiet           print task output and failures only
  --log-format FORMAT   text (default) or json: one JSON object per event
  --audit[=MODE]        report what tasks read, write, run or use without declaring
                        it (MODE warn, the default, or strict: store nothing and exit 1)
  --version             print the version
  --completion SHELL    print the completion script for bash, zsh or fish
  -h, --help            this help; TASK --help shows a task's options

exit codes: 0 success, 1 a task failed, 2 usage or definition error, 130 interrupted
"""

# And `init`, handled first: it needs no tasksfile.
COMMANDS = ("graph", "hash", "watch", "history", "audit")
# Two-word commands: built in whatever the tasks are called.
SUBCOMMANDS = {"cache": ("info", "clean", "prune"), "ci": ("github",)}


class Options:
    """The global options, as parsed; None means "not given"."""

    def __init__(self) -> None:
        self.file: str | None = None
        self.directory: str | None = None
        self.jobs: int | None = None
        self.force = False
        self.dry_run = False
        self.keep_going = False
        self.since: str | None = None
        self.no_cache = False
        self.remote_cache: str | None = None
        self.verbose = 0
        self.quiet = False
        self.log_format = "text"
        self.version = False
        self.list = False
        self.json = False
        self.help = False
        self.format: str | None = None
        self.max_size: str | None = None
        self.older_than: str | None = None
        self.output: str | None = None
        self.check = False
        self.run: str | None = None
        self.task: str | None = None
        self.limit: str | None = None
        self.restart_build = False
        self.restart_on_exit = False
        self.clear = False
        self.completion: str | None = None
        self.audit: str | None = None  # --audit[=warn|strict]; None: as configured
        self.audit_command = False  # `runner audit`: audited whatever is configured


# option -> (attribute, takes a value)
_GLOBAL: dict[str, tuple[str, bool]] = {
    "-f": ("file", True),
    "--file": ("file", True),
    "-C": ("directory", True),
    "--directory": ("directory", True),
    "-j": ("jobs", True),
    "--jobs": ("jobs", True),
    "-B": ("force", False),
    "--force": ("force", False),
    "-n": ("dry_run", False),
    "--dry-run": ("dry_run", False),
    "-k": ("keep_going", False),
    "--keep-going": ("keep_going", False),
    "--since": ("since", True),
    "--no-cache": ("no_cache", False),
    "--remote-cache": ("remote_cache", True),
    "-v": ("verbose", False),
    "--verbose": ("verbose", False),
    "-q": ("quiet", False),
    "--quiet": ("quiet", False),
    "--log-format": ("log_format", True),
    "--version": ("version", False),
    "--completion": ("completion", True),
    "--audit": ("audit", False),  # an optional value: --audit=strict
    "-l": ("list", False),
    "--list": ("list", False),
    "--json": ("json", False),
    "-h": ("help", False),
    "--help": ("help", False),
    "--format": ("format", True),
    "--max-size": ("max_size", True),
    "--older-than": ("older_than", True),
    # runner ci github
    "--output": ("output", True),
    "--check": ("check", False),
    # runner history
    "--task": ("task", True),
    "--limit": ("limit", True),
    # runner watch
    "--run": ("run", True),
    "--restart-build": ("restart_build", False),
    "--restart-on-exit": ("restart_on_exit", False),
    "--clear": ("clear", False),
}


def _set_global(opts: Options, flag: str, value: str | None) -> None:
    attr, _ = _GLOBAL[flag]
    if attr == "jobs":
        try:
            jobs = int(value or "")
        except ValueError:
            jobs = 0
        if jobs < 1:  # the same rule, and words, as `jobs` in the config and RUNNER_JOBS
            raise UsageError(f"{flag} expects a whole number >= 1, got {value!r}")
        opts.jobs = jobs
    elif attr == "log_format":
        if value not in ("text", "json"):
            raise UsageError(f"--log-format expects text or json, got {value!r}")
        opts.log_format = value
    elif attr == "audit":
        modes = ("off", "warn", "strict")
        if value is not None and value not in modes:
            raise UsageError(
                f"--audit expects warn, strict or off, got {value!r}{did_you_mean(value, modes)}"
            )
        opts.audit = value or "warn"
    elif attr == "verbose":
        opts.verbose += 1
    elif _GLOBAL[flag][1]:
        setattr(opts, attr, value)
    else:
        setattr(opts, attr, True)


def _split(word: str) -> tuple[str, str | None]:
    """`--opt=value` -> (`--opt`, `value`); `-j4` -> (`-j`, `4`)."""
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        return name, (value if eq else None)
    if len(word) > 2 and word[:2] in _GLOBAL and _GLOBAL[word[:2]][1]:
        return word[:2], word[2:]
    return word, None


def _take_global(opts: Options, words: list[str], i: int) -> int | None:
    """Apply the global option at words[i]; the index after it, or None if it is not
    one (bundled short flags like -nB count)."""
    word = words[i]
    flag, value = _split(word)
    if flag == "--audit":  # --audit alone, or --audit=MODE
        _set_global(opts, flag, value)
        return i + 1
    if flag in _GLOBAL:
        if _GLOBAL[flag][1]:
            if value is None:
                if i + 1 >= len(words):
                    raise UsageError(f"option {flag} needs a value")
                value = words[i + 1]
                i += 1
        elif value is not None:
            raise UsageError(f"option {flag} takes no value")
        _set_global(opts, flag, value)
        return i + 1
    if not word.startswith("--") and len(word) > 2:  # -nB, -kj4
        letters = word[1:]
        for k, ch in enumerate(letters):
            f = "-" + ch
            if f not in _GLOBAL:
                return None
            if _GLOBAL[f][1]:
                rest = letters[k + 1 :]
                if not rest:
                    if i + 1 >= len(words):
                        raise UsageError(f"option {f} needs a value")
                    _set_global(opts, f, words[i + 1])
                    return i + 2
                _set_global(opts, f, rest)
                return i + 1
            _set_global(opts, f, None)
        return i + 1
    return None


def parse_globals(argv: list[str]) -> tuple[Options, list[str]]:
    """Global options before the first word; the rest (from the first word on) is left
    for the tasks to claim their own options first."""
    opts = Options()
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return opts, argv[i + 1 :]
        if not word.startswith("-") or word == "-":
            break
        nxt = _take_global(opts, argv, i)
        if nxt is None:
            raise UsageError(f"unknown option {word}{_global_hint(_split(word)[0])}")
        i = nxt
    return opts, argv[i:]


def main(
    argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run runner with these arguments; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if argv and argv[0].startswith("--complete="):  # hidden: what completion scripts ask
        from .complete import complete_command

        words = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        return complete_command(argv[0].partition("=")[2], words, out, os.environ)
    opts = Options()
    try:
        opts, rest = parse_globals(argv)
        return _dispatch(opts, rest, out, err)
    except UserError as e:
        if opts.verbose:
            import traceback

            traceback.print_exc(file=err)
        err.write(e.show() + "\n")
        return e.exit_code
    except KeyboardInterrupt:
        err.write("runner: interrupted\n")
        return EXIT_INTERRUPTED
    except StoreError as e:
        err.write(f"runner: error: {e}\n")
        return EXIT_TASK_FAILED
    except BrokenPipeError:
        return EXIT_OK


def _dispatch(opts: Options, words: list[str], out: TextIO, err: TextIO) -> int:
    if opts.version:
        out.write(f"runner {__version__}\n")
        return EXIT_OK
    if opts.completion is not None:
        from .complete import script

        if words:
            raise UsageError(f"--completion takes no task, got {words[0]!r}")
        out.write(script(opts.completion))
        return EXIT_OK
    if opts.help and not words:
        out.write(HELP)
        return EXIT_OK
    topic = _builtin_topic(words)
    wants_help = topic is not None and _asks_for_help(opts, words)
    if wants_help and words[0] in SUBCOMMANDS:  # always built in: no tasksfile needed
        return _command_help(topic, out)
    start = opts.directory or os.getcwd()
    if opts.directory is not None and not os.path.isdir(opts.directory):
        raise UsageError(f"-C {opts.directory}: no such directory")
    from .graph import Graph
    from .loader import NoTasksfileError, find_project, load_graph, load_tasks

    if words and words[0] == "init":
        # `init` is built in, unless the project here has a task of that name.
        try:
            project: Project | None = find_project(start, opts.file)
        except NoTasksfileError:
            project = None
        if project is None or "init" not in Graph(load_tasks(project.tasksfile, project.root)):
            if wants_help:
                return _command_help("init", out)
            from .scaffold import init_project

            return init_project(os.path.abspath(start), out, words[1:])
    try:
        project = find_project(start, opts.file)
    except NoTasksfileError:
        if wants_help:
            return _command_help(topic, out)
        raise
    read_only = bool(
        opts.list
        or opts.dry_run
        or opts.help
        or opts.no_cache
        or (words and words[0] in ("graph", "hash", "cache", "history"))
        or "--help" in words
        or "-h" in words
    )
    graph = load_graph(project, err, may_write=not read_only)
    if opts.list:
        from . import describe

        origins = project.plugins.origins if project.plugins is not None else {}
        out.write(
            describe.list_json(graph)
            if opts.json
            else describe.list_text(graph, project.tasksfile, origins)
        )
        return EXIT_OK
    if len(words) > 1 and words[1] in SUBCOMMANDS.get(words[0], ()):
        return _command(f"{words[0]} {words[1]}", opts, words[2:], project, graph, out, err)
    if words and words[0] in SUBCOMMANDS and words[0] not in graph:
        choices = " | ".join(SUBCOMMANDS[words[0]])
        raise UsageError(f"usage: runner {words[0]} {choices}")
    if words and words[0] in COMMANDS and words[0] not in graph:
        if wants_help:
            return _command_help(words[0], out)
        return _command(words[0], opts, words[1:], project, graph, out, err)
    return _run(opts, words, project, graph, out, err)


def _builtin_topic(words: list[str]) -> str | None:
    """The built-in command the words start with (`cache prune`, `graph`, ...), if any."""
    if not words:
        return None
    if words[0] in SUBCOMMANDS:
        if len(words) > 1 and words[1] in SUBCOMMANDS[words[0]]:
            return f"{words[0]} {words[1]}"
        return words[0]
    if words[0] in COMMANDS or words[0] == "init":
        return words[0]
    return None


def _asks_for_help(opts: Options, words: list[str]) -> bool:
    """Is -h/--help given, before the command or among its words (up to a `--`)?"""
    mine = words[1 : words.index("--")] if "--" in words else words[1:]
    return opts.help or any(w in ("-h", "--help") for w in mine)


def _command_help(topic: str | None, out: TextIO) -> int:
    """A built-in command's --help: its usage, and nothing done."""
    from .command_help import COMMAND_HELP

    out.write(COMMAND_HELP[topic or ""])
    return EXIT_OK


def _command(
    name: str,
    opts: Options,
    words: list[str],
    project: Project,
    graph: Graph,
    out: TextIO,
    err: TextIO,
) -> int:
    if name == "hash":
        return _hash(opts, words, project, graph, out, err)
    if name == "watch":
        from .watch import watch_command

        invocations = _parse_invocations(opts, words, graph)
        if not invocations:
            raise UsageError("usage: runner watch TASK [TASK-OPTIONS] [--run 'CMD']")
        order = graph.select([n for n, _ in invocations])
        return watch_command(
            opts, project, graph, invocations, _task_args(graph, order, invocations), out, err
        )
    if name == "audit":
        opts.force = opts.audit_command = True
        return _run(opts, words, project, graph, out, err)
    if name == "history":
        from .history import history_command

        _no_words(name, opts, words)
        task = graph.resolve(opts.task).name if opts.task else None
        try:
            limit = int(opts.limit or 20)
        except ValueError:
            raise UsageError(f"--limit expects a whole number, got {opts.limit!r}") from None
        return history_command(project.cache_dir, task, limit, opts.json, out)
    if name.startswith("cache "):
        from .maintenance import cache_command

        _no_words(name, opts, words)
        return cache_command(
            name.split()[1], project, opts.max_size, opts.older_than, out, err, as_json=opts.json
        )
    targets: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            nxt = _take_global(opts, words, i)
            if nxt is None:
                raise UsageError(
                    f"unknown option {word} for `runner {name}`{_global_hint(_split(word)[0])}"
                )
            i = nxt
            continue
        targets += _targets(word, graph)
        i += 1
    if name == "ci github":
        from .ci.github import ci_command

        return ci_command(
            project, graph, targets, output=opts.output, check=opts.check, out=out, err=err
        )
    if name == "graph":
        from . import describe

        fmt = opts.format or "tree"
        if fmt not in describe.GRAPH_FORMATS:
            raise UsageError(
                f"--format expects one of {', '.join(describe.GRAPH_FORMATS)}, "
                f"got {fmt!r}{did_you_mean(fmt, describe.GRAPH_FORMATS)}"
            )
        if not targets:
            targets = [n for n in graph.names()]
            needed = {d for n in targets for d in graph.deps(n)}
            roots = [n for n in targets if n not in needed]
        else:
            roots = [graph.resolve(t).name for t in targets]
        order = graph.select(targets)
        if fmt == "html":
            from .graph_html import graph_page, read_last_statuses

            title = f"runner graph: {os.path.basename(project.root)}"
            text = graph_page(graph, order, read_last_statuses(project.cache_dir), title)
        else:
            encoding = (getattr(out, "encoding", None) or "utf-8").lower()
            ascii_only = not opts.output and "utf" not in encoding
            text = describe.graph_text(graph, order, roots, fmt, ascii_only=ascii_only)
        if opts.output:
            return _write_output(opts, text, out)
        out.write(text)
        return EXIT_OK
    raise AssertionError(name)


def _write_output(opts: Options, text: str, out: TextIO) -> int:
    """`--output PATH`: write the text there (relative to -C DIR, as if started in it)."""
    path = os.path.join(opts.directory or "", opts.output or "")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"--output {opts.output}: {e.strerror}") from None
    out.write(f"wrote {path}\n")
    return EXIT_OK


def _no_words(name: str, opts: Options, words: list[str]) -> None:
    i = 0
    while i < len(words):
        nxt = _take_global(opts, words, i) if words[i].startswith("-") else None
        if nxt is None:
            raise UsageError(f"`runner {name}` does not take {words[i]!r}")
        i = nxt


def _hash(
    opts: Options, words: list[str], project: Project, graph: Graph, out: TextIO, err: TextIO
) -> int:
    """Print the fingerprint of each task named (its deps' are computed on the way)."""
    invocations = _parse_invocations(opts, words, graph)
    if not invocations:
        raise UsageError("usage: runner hash TASK [TASK-OPTIONS]")
    order = graph.select([name for name, _ in invocations])
    args = _task_args(graph, order, invocations)
    planner = _planner(opts, project, graph, err, readonly=True)
    for name in order:
        planner.fingerprint(name, args[name])
    for name, _ in invocations:
        key = planner.key(name)
        assert key is not None
        out.write(f"{key.hex()}  {name}\n" if len(invocations) > 1 else f"{key.hex()}\n")
    return EXIT_OK


def _planner(opts: Options, project: Project, graph: Graph, err: TextIO, *, readonly: bool) -> Any:
    from .run import make_planner

    return make_planner(
        project,
        graph,
        err,
        no_cache=opts.no_cache,
        force=opts.force,
        readonly=readonly,
        remote_cache=opts.remote_cache,
    )


def _parse_invocations(
    opts: Options, words: list[str], graph: Graph
) -> list[tuple[str, dict[str, Any]]]:
    """`build test --k=x --verbose lint` -> [(build, {}), (test, {k: x, verbose: True}),
    (lint, {})]. A global option may follow a task when the task has no option of that
    name."""
    invocations: list[tuple[str, dict[str, Any]]] = []
    pattern = None  # the last target, when it was a pattern (`docs:*`)
    matched: set[str] = set()  # tasks that a pattern, not their name, put on the line
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            if pattern is not None:
                raise UsageError(
                    f"the words after -- go to one task; name it instead of {pattern!r}"
                )
            _take_extra(invocations, words[i + 1 :], graph)
            break
        if word == "-" or not word.startswith("-"):
            pattern = word if _is_pattern(word) else None
            named = {n for n, _ in invocations}
            for n in _targets(word, graph):
                if pattern is not None and n in named:
                    continue  # named already: a pattern adds a task once
                if pattern is None and n in matched:
                    # named after a pattern matched it: it takes its options here
                    invocations = [inv for inv in invocations if inv[0] != n]
                    matched.discard(n)
                if pattern is not None:
                    matched.add(n)
                invocations.append((n, {}))
            i += 1
            continue
        current = graph.tasks[invocations[-1][0]] if invocations and pattern is None else None
        flag, value = _split(word)
        param = None
        negated = False
        if current is not None and flag.startswith("--"):
            for p in current.params:
                if p.option == flag:
                    param = p
                elif p.type is bool and flag == "--no-" + p.option[2:]:
                    param, negated = p, True
        if param is None and current is not None and flag in ("-h", "--help"):
            opts.help = True
            i += 1
            continue
        if param is None:
            nxt = _take_global(opts, words, i)
            if nxt is None and pattern is not None:
                raise UsageError(
                    f"unknown option {flag}: task options cannot follow a pattern "
                    f"({pattern!r}); name the task"
                )
            if nxt is None:
                where = f" for task '{current.name}'" if current is not None else ""
                raise UsageError(
                    f"unknown option {flag}{where}{_option_hint(flag, current, graph)}",
                    details=_usage(current) if current else "",
                )
            i = nxt
            continue
        assert current is not None
        if param.type is bool and value is None:
            converted: Any = not negated
            i += 1
        else:
            if value is None:
                if i + 1 >= len(words):
                    raise UsageError(
                        f"task '{current.name}': option {flag} needs a value",
                        details=_usage(current),
                    )
                value = words[i + 1]
                i += 1
            if negated:
                raise UsageError(
                    f"task '{current.name}': {flag} takes no value", details=_usage(current)
                )
            try:
                converted = param.convert(value)
            except ValueError as e:
                raise UsageError(f"task '{current.name}': {e}", details=_usage(current)) from None
            i += 1
        invocations[-1][1][param.name] = converted
    return invocations


def _is_pattern(word: str) -> bool:
    return any(c in word for c in "*?[")


def _targets(word: str, graph: Graph) -> list[str]:
    """The tasks a target word names: one task (or alias), or every task a pattern
    (`'docs:*'`) matches. A namespace's bare name is an error that says so."""
    if _is_pattern(word):
        return graph.matching(word)
    if word not in graph:
        members = graph.namespace(word)
        if members:
            shown = ", ".join(members[:5]) + (", ..." if len(members) > 5 else "")
            raise UsageError(
                f"'{word}' is a namespace, not a task: '{word.rstrip(':')}:*' runs all of "
                f"its tasks ({shown})"
            )
    return [graph.resolve(word).name]


def _take_extra(
    invocations: list[tuple[str, dict[str, Any]]], words: list[str], graph: Graph
) -> None:
    """`TASK -- WORDS...`: the words go to the task named right before `--` (as npm,
    mise and just pass them to one script or recipe), as its `*args`."""
    if not invocations:
        if words:
            raise UsageError("the words after -- go to a task: name it before the --")
        return
    name, values = invocations[-1]
    t = graph.tasks[name]
    if t.extra is None:
        if words:
            raise UsageError(
                f"task '{name}' takes no arguments after --; give its function a "
                "`*args: str` parameter to receive them",
                details=_usage(t),
            )
        return
    values[t.extra] = tuple(words)


def _option_hint(flag: str, task: Any, graph: Graph) -> str:
    """Did-you-mean for an unknown option, within the scope it was given in: the
    task's own options first, then runner's (long with long, short with short, and
    closer, since the user was talking to the task); else the task that has an
    option of exactly that name."""
    import difflib

    if task is None:
        return _global_hint(flag)
    own = [p.option for p in task.params]
    own += ["--no-" + p.option[2:] for p in task.params if p.type is bool]
    close = difflib.get_close_matches(flag, own, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}', an option of task '{task.name}'?)"
    close = difflib.get_close_matches(flag, _same_form(flag), n=1, cutoff=0.75)
    if close:
        return f" (did you mean '{close[0]}', an option of runner itself?)"
    for name in graph.names():
        if name != task.name and any(p.option == flag for p in graph.tasks[name].params):
            return f" ({flag} is an option of task '{name}': give it after that task)"
    return ""


def _global_hint(flag: str) -> str:
    """Did-you-mean among runner's own options (long with long, short with short)."""
    return did_you_mean(flag, _same_form(flag))


def _same_form(flag: str) -> list[str]:
    return [o for o in _GLOBAL if o.startswith("--") == flag.startswith("--")]


def _usage(t: Any) -> str:
    from .describe import usage

    return usage(t)


def _task_args(
    graph: Graph, order: list[str], invocations: list[tuple[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """The arguments of every task of the run: the defaults, with the command line's on
    top; a required option that nobody gave is an error."""
    given: dict[str, dict[str, Any]] = {}
    for name, values in invocations:
        if name in given and given[name] != values:
            raise UsageError(f"task '{name}' is given twice with different options")
        given[name] = values
    args: dict[str, dict[str, Any]] = {}
    for name in order:
        t = graph.tasks[name]
        values = t.default_args()
        values.update(given.get(name, {}))
        missing = [p.option for p in t.params if p.required and p.name not in values]
        if missing:
            needer = (
                ""
                if name in given
                else " (it is needed by "
                + ", ".join(sorted(n for n in order if name in graph.deps(n)))
                + ")"
            )
            raise UsageError(f"task '{name}' needs {', '.join(missing)}{needer}", details=_usage(t))
        args[name] = values
    return args


def _run(
    opts: Options, words: list[str], project: Project, graph: Graph, out: TextIO, err: TextIO
) -> int:
    if len(words) == 1 and words[0] not in graph and graph.namespace(words[0]):
        from .describe import namespace_text  # `runner docs`: what is in docs:

        out.write(namespace_text(graph, words[0]))
        return EXIT_OK
    invocations = _parse_invocations(opts, words, graph)
    if opts.help:
        from .describe import input_counts, task_help

        if not invocations:
            out.write(HELP)
        skip = [os.path.relpath(project.cache_dir, project.root)]
        for name, _ in invocations:
            t = graph.tasks[name]
            out.write(task_help(t, graph, input_counts(project.root, t, skip)))
        return EXIT_OK
    if not invocations:
        if graph.default is None:
            from .describe import list_text

            origins = project.plugins.origins if project.plugins is not None else {}
            out.write(list_text(graph, project.tasksfile, origins))
            return EXIT_OK
        invocations = [(graph.default, {})]
    order = graph.select([name for name, _ in invocations])
    args = _task_args(graph, order, invocations)
    skipped: list[str] = []
    if opts.since:
        from .since import narrow_to_changes

        order, skipped = narrow_to_changes(opts.since, project, graph, order)
        if not order:
            out.write(f"nothing to do: no task's inputs or code changed since {opts.since}\n")
            return EXIT_OK
    planner = _planner(opts, project, graph, err, readonly=opts.dry_run)
    try:
        planner.check_dotenv(order)
        if opts.dry_run:
            from .run import dry_run

            return dry_run(
                order, graph, args, planner, out, skipped, opts.since, verbose=bool(opts.verbose)
            )
        return _execute(opts, project, graph, order, args, planner, out, err)
    finally:
        if planner.store is not None:
            planner.store.close()


def _execute(
    opts: Options,
    project: Project,
    graph: Graph,
    order: list[str],
    args: dict[str, dict[str, Any]],
    planner: Any,
    out: TextIO,
    err: TextIO,
) -> int:
    from .run import execute

    outcome = execute(
        project,
        graph,
        order,
        args,
        planner,
        out,
        err,
        jobs=opts.jobs,
        log_format=opts.log_format,
        quiet=opts.quiet,
        verbose=bool(opts.verbose),
        keep_going=opts.keep_going,
        audit=_audit_mode(opts, project),
    )
    return outcome.exit_code


def _audit_mode(opts: Options, project: Project) -> str:
    """--audit[=MODE] over `[tool.runner] audit` (RUNNER_AUDIT); `runner audit` audits."""
    mode = opts.audit or project.config.audit
    return "warn" if mode == "off" and opts.audit_command else mode


def run_entry(entry: Callable[[], int]) -> int:
    """Run `entry`; as PID 1 (a container's entrypoint), first fork a child to do the
    work while this process reaps every orphan the way an init does."""
    if os.getpid() == 1 and hasattr(os, "fork"):
        from .proc import run_as_init

        return run_as_init(entry)
    return entry()
