"""Shell completion: `runner --completion bash|zsh|fish` prints a script; the script
asks `runner --complete=SHELL -- WORDS...` (hidden) for the candidates of the last word.

The candidates are worked out here, once for the three shells: task names (and the
built-in commands) where a task goes, a task's options after it, the global options,
the values of options that take a few known ones, and a directive (`:files`, `:dirs`)
where a path goes, for the shell's own file completion. Loading the tasks costs what
`runner --list` costs, and only happens when a task name or option is wanted.
"""

from __future__ import annotations

import io
import os

from .errors import UsageError, UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

    from .graph import Graph

SHELLS = ("bash", "zsh", "fish")
FILES, DIRS = ":files", ":dirs"  # directives: never a task name (no name starts with ':')

COMMANDS = {
    "graph": "show the task graph",
    "hash": "print a task's fingerprint",
    "watch": "re-run a task when its inputs change",
    "history": "recent runs",
    "audit": "run tasks, report what they do not declare",
    "ci": "generate a CI workflow",
    "cache": "inspect and clean the cache",
    "init": "write a starter tasksfile.py",
}
TWO_WORD = {
    "ci": {"github": "write the GitHub Actions workflow"},
    "cache": {
        "info": "what the cache holds",
        "clean": "empty the cache",
        "prune": "drop old or surplus entries",
    },
}
# The options of the built-in commands (beyond the global ones).
COMMAND_OPTIONS = {
    "graph": {"--format": "tree, mermaid, dot, json or html", "--output": "write to a file"},
    "watch": {
        "--run": "a command to (re)start after each build",
        "--restart-build": "cancel a build when a file changes",
        "--restart-on-exit": "restart a server that exits",
        "--clear": "clear the screen before each build",
    },
    "history": {"--task": "one task's durations", "--limit": "how many runs", "--json": "JSON"},
    "ci github": {"--output": "where to write it", "--check": "exit 1 if the file is stale"},
    "cache info": {"--json": "JSON"},
    "cache prune": {"--max-size": "e.g. 1G", "--older-than": "e.g. 30d"},
}
VALUES = {"--log-format": ("text", "json")}
PATHS = {"-f": FILES, "--file": FILES, "--output": FILES, "-C": DIRS, "--directory": DIRS}


class Candidate:
    """One completion: the word, and what it is (zsh and fish show it)."""

    __slots__ = ("word", "help")

    def __init__(self, word: str, help: str = "") -> None:
        self.word = word
        self.help = help


def script(shell: str) -> str:
    """The completion script for `shell`."""
    if shell not in SHELLS:
        raise UsageError(f"--completion expects one of {', '.join(SHELLS)}, got {shell!r}")
    return _SCRIPTS[shell]


def complete_command(shell: str, words: list[str], out: TextIO, environ: Mapping[str, str]) -> int:
    """`--complete=SHELL -- WORDS...`: the candidates for the last word, one a line."""
    if shell not in SHELLS:
        return 2
    breaks = environ.get("COMP_WORDBREAKS", "\"'><=;|&(:") if shell == "bash" else ""
    if shell == "bash":
        words = rejoin(words, breaks)
    if not words:
        words = [""]
    found = candidates(words[:-1], words[-1])
    out.write("".join(_line(shell, c, words[-1], breaks) + "\n" for c in found))
    return 0


def rejoin(words: list[str], breaks: str) -> list[str]:
    """Bash splits `docs:build` and `--k=x` into three words when `:` and `=` are in
    COMP_WORDBREAKS: put them back together."""
    glue = [c for c in ":=" if c in breaks]
    if not glue:
        return words
    out: list[str] = []
    joined = False
    for w in words:
        if w and all(c in glue for c in w) and out:
            out[-1] += w
            joined = True
        elif joined:
            out[-1] += w
            joined = False
        else:
            out.append(w)
    return out


def _line(shell: str, c: Candidate, current: str, breaks: str) -> str:
    if c.word in (FILES, DIRS):
        return c.word
    if shell == "bash":
        # Bash replaces only what follows the last word-break character of the word.
        cut = max(current.rfind(b) for b in ":=" if b in breaks) if breaks else -1
        return c.word[cut + 1 :] if cut >= 0 and c.word.startswith(current[: cut + 1]) else c.word
    if shell == "zsh":
        word = c.word.replace("\\", "\\\\").replace(":", "\\:")
        return f"{word}:{c.help}" if c.help else word
    return f"{c.word}\t{c.help}" if c.help else c.word


class _Line:
    """What the words before the one being completed say: the -f/-C that find the
    tasks, the built-in command, the task whose options come next, an option waiting
    for its value, and whether `--` has passed."""

    def __init__(self) -> None:
        self.file: str | None = None
        self.directory: str | None = None
        self.command: str | None = None
        self.task: str | None = None
        self.positional = False
        self.pending: str | None = None  # an option whose value is being typed
        self.extra = False


def candidates(done: list[str], current: str) -> list[Candidate]:
    """The completions of `current`, given the words before it."""
    graph = _Lazy()
    line = _read(done, graph)
    if line.extra:
        return [Candidate(FILES)]
    if line.pending is not None:
        return _values(line.pending, current, graph)
    if current.startswith("--") and "=" in current:
        flag, _, typed = current.partition("=")
        return [
            Candidate(f"{flag}={c.word}", c.help)
            for c in _values(flag, typed, graph)
            if c.word not in (FILES, DIRS)
        ]
    if current.startswith("-"):
        return _match(_options(line, graph), current)
    return _match(_positionals(line, graph), current)


def _read(done: list[str], graph: _Lazy) -> _Line:
    from .cli import _GLOBAL

    line = graph.line = _Line()  # the tasks load with the -f and -C read so far
    i = 0
    while i < len(done):
        w = done[i]
        i += 1
        if line.extra:
            continue
        if w == "--":
            line.extra = line.positional
            continue
        if w.startswith("-") and w != "-":
            flag, eq, value = w.partition("=") if w.startswith("--") else (w[:2], "", w[2:])
            takes = _takes_value(flag, line, graph, _GLOBAL)
            if takes and not eq and not value:
                if i >= len(done):
                    line.pending = flag
                    break
                value = done[i]
                i += 1
            if flag in ("-f", "--file"):
                line.file = value
            elif flag in ("-C", "--directory"):
                line.directory = value
            continue
        if not line.positional and w in COMMANDS and not graph.has(w):
            line.command = w
        elif line.command in TWO_WORD and w in TWO_WORD[line.command]:
            line.command = f"{line.command} {w}"
        elif line.command not in ("history", "init") and not (line.command or "").startswith(
            "cache"
        ):
            line.task = w
        line.positional = True
    return line


def _takes_value(flag: str, line: _Line, graph: _Lazy, table: dict[str, tuple[str, bool]]) -> bool:
    if line.task is not None and flag.startswith("--"):
        g = graph.get()
        t = g.tasks.get(line.task) if g is not None else None
        for p in t.params if t is not None else ():
            if p.option == flag:
                return p.type is not bool
    return flag in table and table[flag][1]


def _values(flag: str, typed: str, graph: _Lazy) -> list[Candidate]:
    if flag in PATHS:
        return [Candidate(PATHS[flag])]
    if flag == "--format":
        from .describe import GRAPH_FORMATS

        return _match([Candidate(f) for f in GRAPH_FORMATS], typed)
    if flag in VALUES:
        return _match([Candidate(v) for v in VALUES[flag]], typed)
    if flag == "--task":
        return _match(_tasks(graph), typed)
    return []


def _options(line: _Line, graph: _Lazy) -> list[Candidate]:
    found: list[Candidate] = []
    if line.task is not None:
        g = graph.get()
        t = g.tasks.get(line.task) if g is not None else None
        if t is not None:
            from .describe import _param_help

            for p in t.params:
                found.append(Candidate(p.option, _param_help(p)))
                if p.type is bool:
                    found.append(Candidate("--no-" + p.option[2:], "turn it off"))
            found.append(Candidate("--help", f"what {t.name} does"))
    if line.command in COMMAND_OPTIONS:
        found += [Candidate(o, h) for o, h in COMMAND_OPTIONS[line.command].items()]
    taken = {c.word for c in found}
    found += [c for c in global_options() if c.word not in taken]
    return found


def _positionals(line: _Line, graph: _Lazy) -> list[Candidate]:
    if line.command in TWO_WORD:
        return [Candidate(w, h) for w, h in TWO_WORD[line.command].items()]
    if line.command in ("history", "init") or (line.command or "").startswith("cache"):
        return []
    found = _tasks(graph)
    if not line.positional:
        found += [Candidate(c, h) for c, h in COMMANDS.items() if not graph.has(c)]
    return found


def _tasks(graph: _Lazy) -> list[Candidate]:
    g = graph.get()
    if g is None:
        return []
    return [Candidate(n, g.tasks[n].summary) for n in g.names()]


def _match(found: list[Candidate], prefix: str) -> list[Candidate]:
    return [c for c in found if c.word.startswith(prefix)]


def global_options() -> list[Candidate]:
    """The global options with their help, read from `runner --help`'s text."""
    from .cli import HELP

    found = []
    inside = False
    for text in HELP.splitlines():
        if text.startswith("options:"):
            inside = True
            continue
        if inside and not text.startswith("  -"):
            if text.strip() == "":
                break
            continue
        if inside:
            names, _, help_ = text.strip().partition("  ")
            for name in names.split(","):
                word = name.strip().split(" ")[0].split("[")[0]  # --audit[=MODE]
                if word.startswith("-"):
                    found.append(Candidate(word, help_.strip()))
    return found


class _Lazy:
    """The project's tasks, loaded the first time a candidate needs them (None when
    there is no tasksfile or it does not load: completion never fails)."""

    def __init__(self) -> None:
        self.line: _Line | None = None
        self._graph: Graph | None = None
        self._loaded = False

    def has(self, name: str) -> bool:
        g = self.get()
        return g is not None and name in g

    def get(self) -> Graph | None:
        if not self._loaded:
            self._loaded = True
            self._graph = _load(self.line)
        return self._graph


def _load(line: _Line | None) -> Graph | None:
    from .loader import find_project, load_graph

    directory = line.directory if line is not None else None
    file = line.file if line is not None else None
    start = os.path.expanduser(directory) if directory else os.getcwd()
    try:
        project = find_project(start, os.path.expanduser(file) if file else None)
        return load_graph(project, io.StringIO())  # a plugin's warnings: nowhere
    except (UserError, OSError):
        return None


_BASH = r"""# bash completion for runner. Load it with
#   source <(runner --completion bash)          (in ~/.bashrc)
# or save it as ~/.local/share/bash-completion/completions/runner
_runner_complete() {
    local IFS=$'\n'
    local -a reply
    reply=($(COMP_WORDBREAKS="$COMP_WORDBREAKS" command "${COMP_WORDS[0]}" \
        --complete=bash -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    case "${reply[0]}" in
        :files) COMPREPLY=(); compopt -o default 2>/dev/null ;;
        :dirs) COMPREPLY=(); compopt -o dirnames 2>/dev/null ;;
        *) COMPREPLY=("${reply[@]}") ;;
    esac
    return 0
}
complete -F _runner_complete runner
"""

_ZSH = r"""#compdef runner
# zsh completion for runner. Load it with
#   source <(runner --completion zsh)           (in ~/.zshrc, after compinit)
# or save it as _runner in a directory of $fpath
_runner() {
    local -a reply
    reply=("${(@f)$(command ${words[1]} --complete=zsh -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    case ${reply[1]} in
        :files) _files ;;
        :dirs) _files -/ ;;
        '') return 1 ;;
        *) _describe -t values runner reply ;;
    esac
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _runner "$@"
else
    compdef _runner runner
fi
"""

_FISH = r"""# fish completion for runner. Load it with
#   runner --completion fish | source
# or save it as ~/.config/fish/completions/runner.fish
function __runner_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l reply (command $tokens[1] --complete=fish -- $tokens[2..-1] $current 2>/dev/null)
    switch "$reply[1]"
        case :files
            __fish_complete_path $current
        case :dirs
            __fish_complete_directories $current
        case '*'
            printf '%s\n' $reply
    end
end
complete -c runner -f -a '(__runner_complete)'
"""

_SCRIPTS: dict[str, str] = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
