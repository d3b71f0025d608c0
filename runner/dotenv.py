""".env files: the variables they set, for the tasks that load them.

The project's files (`[tool.runner] dotenv`) reach every task, a task's own
(`@task(dotenv=...)`) reach that task; a later file overrides an earlier one, a task's
files override the project's, and the process environment overrides them all (as
go-task, Docker Compose and python-dotenv do by default: `FOO=1 runner build` wins over
a committed `.env`). A file that does not exist sets nothing.

The syntax is the common one:

    # a comment
    KEY=value                  # a comment after a space; the value is stripped
    export KEY=value           # `export` is allowed and ignored
    KEY="a \\"quoted\\" ${HOME}"  # escapes (\\n \\t \\\\ \\" \\$) and ${VAR} / ${VAR:-default}
    KEY='literal $not_expanded'
    KEY="spans
    lines"

Tasks run as threads of one process, so nothing here touches `os.environ`: the values
reach a task's `sh` commands through their environment and its Python code through
`runner.environ()`.
"""

from __future__ import annotations

import os

from .errors import TasksfileError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .tasks import Task

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


class DotenvError(TasksfileError):
    """A .env file that cannot be read or parsed: it names the file and the line."""


def parse(text: str, file: str, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a .env file's text sets, in order. `${VAR}` in a value is the
    variable's value in `lookup` (the process environment, then the files read before
    this one), else in the lines above it, else empty (or the default of
    `${VAR:-default}`)."""
    lookup = lookup if lookup is not None else {}
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        no = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, eq, rest = line.partition("=")
        key = key.strip()
        if not eq:
            raise DotenvError(f"expected KEY=VALUE, got {line!r}", file=file, line=no)
        if not key or key[0] not in _NAME_START or not set(key) <= _NAME_CHARS:
            raise DotenvError(f"{key!r} is not a variable name", file=file, line=no)
        rest = rest.lstrip()

        def known(name: str) -> str | None:
            return lookup.get(name, values.get(name))

        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body, after, used = _quoted(rest[1:], quote, lines, i)
            if body is None:
                raise DotenvError(f"{key}: the {quote} quote is never closed", file=file, line=no)
            i += used
            tail = after.strip()
            if tail and not tail.startswith("#"):
                raise DotenvError(
                    f"{key}: unexpected {tail!r} after the closing quote", file=file, line=no + used
                )
            value = body if quote == "'" else _expand(_unescape(body), known, file, no)
        else:
            cut = _comment_start(rest)
            value = _expand(rest[:cut].strip(), known, file, no)
        values[key] = value
    return values


def _quoted(text: str, quote: str, lines: list[str], i: int) -> tuple[str | None, str, int]:
    """The body of a quoted value that starts in `text` and may go on over the next
    lines (from `lines[i]`); what follows the closing quote; how many more lines it
    took. (None, '', 0) if it never closes."""
    body = text
    used = 0
    while True:
        end = _closing(body, quote)
        if end >= 0:
            return body[:end], body[end + 1 :], used
        if i + used >= len(lines):
            return None, "", 0
        body += "\n" + lines[i + used]
        used += 1


def _closing(text: str, quote: str) -> int:
    k = 0
    while k < len(text):
        c = text[k]
        if c == "\\" and quote == '"':
            k += 2
            continue
        if c == quote:
            return k
        k += 1
    return -1


def _unescape(text: str) -> str:
    out = []
    k = 0
    while k < len(text):
        c = text[k]
        if c == "\\" and k + 1 < len(text) and text[k + 1] in _ESCAPES:
            out.append("\0$" if text[k + 1] == "$" else _ESCAPES[text[k + 1]])
            k += 2
            continue
        out.append(c)
        k += 1
    return "".join(out)


def _comment_start(text: str) -> int:
    """Where an unquoted value's comment starts: a # after whitespace (or at once)."""
    for k, c in enumerate(text):
        if c == "#" and (k == 0 or text[k - 1] in " \t"):
            return k
    return len(text)


def _expand(text: str, known: object, file: str, line: int) -> str:
    """${VAR} and ${VAR:-default}; an escaped `\\$` (marked \\0$ by _unescape) stays."""
    if "$" not in text:
        return text
    out = []
    k = 0
    while k < len(text):
        if text.startswith("\0$", k):
            out.append("$")
            k += 2
            continue
        if text.startswith("${", k):
            end = text.find("}", k)
            if end < 0:
                raise DotenvError(f"{text[k:]!r}: ${{ without a closing }}", file=file, line=line)
            name, _, default = text[k + 2 : end].partition(":-")
            if not name or name[0] not in _NAME_START or not set(name) <= _NAME_CHARS:
                raise DotenvError(f"${{{name}}} is not a variable name", file=file, line=line)
            got = known(name)  # type: ignore[operator]
            out.append(got if got else default)
            k = end + 1
            continue
        out.append(text[k])
        k += 1
    return "".join(out)


def read(path: str, lookup: Mapping[str, str]) -> dict[str, str]:
    """The variables of the file at `path`; {} if it does not exist."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise DotenvError(f"cannot read it: {e.strerror}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DotenvError("not UTF-8 text", file=path, line=line) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return parse(text.replace("\r\n", "\n"), path, lookup)


class Dotenv:
    """The variables each task gets from .env files, read once per run."""

    def __init__(self, root: str, project_files: Iterable[str], environ: Mapping[str, str]) -> None:
        self.root = root
        self.project_files = tuple(project_files)
        self.environ = environ
        self._files: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self._overlays: dict[tuple[str, ...], dict[str, str]] = {}
        self._views: dict[tuple[str, ...], dict[str, str]] = {}

    def files_of(self, task: Task) -> tuple[str, ...]:
        return self.project_files + task.dotenv

    def overlay(self, task: Task) -> dict[str, str]:
        """What the task's .env files add to the process environment (the variables
        the environment does not set)."""
        files = self.files_of(task)
        if not files:
            return {}
        found = self._overlays.get(files)
        if found is None:
            merged: dict[str, str] = {}
            for k, rel in enumerate(files):
                merged.update(self._read(rel, files[:k], merged))
            found = {k: v for k, v in merged.items() if k not in self.environ}
            self._overlays[files] = found
        return found

    def view(self, task: Task) -> Mapping[str, str]:
        """The environment as the task sees it (for the digests of its `env`)."""
        overlay = self.overlay(task)
        if not overlay:
            return self.environ
        files = self.files_of(task)
        found = self._views.get(files)
        if found is None:
            found = self._views[files] = {**overlay, **self.environ}
        return found

    def check(self, tasks: Iterable[Task]) -> None:
        """Read every file these tasks load: a broken one is reported before a run."""
        for t in tasks:
            self.overlay(t)

    def _read(self, rel: str, before: tuple[str, ...], merged: dict[str, str]) -> dict[str, str]:
        """The variables of one file, read after `before` (whose variables, `merged`,
        its `${VAR}` may name)."""
        key = (rel, before)
        found = self._files.get(key)
        if found is None:
            lookup = {**merged, **self.environ}
            found = self._files[key] = read(os.path.join(self.root, rel), lookup)
        return found
