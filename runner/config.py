"""`[tool.runner]` in pyproject.toml, then RUNNER_* variables, as one validated `Config`.

Flags override both; the CLI applies them. A wrong type or an unknown key names the key
(and the file and line); unknown RUNNER_* variables are left alone, because CI systems
set their own (GitHub Actions sets RUNNER_OS, RUNNER_TEMP, ...).
"""

from __future__ import annotations

import os

from .errors import ConfigError, did_you_mean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# key -> (kind, default). Kinds: str, int (>= 0), count (>= 1), number, bool, strings
# (a list of str), str-or-strings, any (a TOML value passed through, checked where it
# is used), and `a|b|c` (one of these strings).
SCHEMA: dict[str, tuple[str, Any]] = {
    "tasksfile": ("str", "tasksfile.py"),
    "jobs": ("count", 0),  # unset (0): the number of CPUs
    "cache_dir": ("str", ".runner"),
    "remote_cache": ("str", ""),
    "remote_cache_timeout": ("number", 60.0),  # seconds for one whole remote request
    "global_inputs": ("strings", []),
    "plugins": ("strings", []),
    "kill_timeout": ("number", 5.0),
    "dotenv": ("str-or-strings", []),  # .env files whose variables reach every task
    "audit": ("off|warn|strict", "off"),  # --audit's mode when it is not given (runner.audit)
}
TABLES: dict[str, dict[str, tuple[str, Any]]] = {
    "watch": {
        "debounce_ms": ("int", 50),
        "kill_timeout": ("number", 5.0),
        "ignore": ("strings", []),
        "clear": ("bool", False),
        "signal": ("str", "SIGTERM"),
    },
    "github": {
        "python-version": ("str", ""),
        "install": ("str", ""),
        "runs-on": ("str-or-strings", "ubuntu-latest"),
        "on": ("any", None),
        "branches": ("str-or-strings", []),  # []: the repository's default branch
        "runner": ("str", ""),  # "": runner-tasks at the version that wrote the workflow
        "output": ("str", ".github/workflows/runner.yml"),
    },
}


class Config:
    """The project's settings. `get("watch.debounce_ms")` or attribute access for the
    top-level keys (`config.jobs`)."""

    def __init__(self, values: dict[str, Any], *, file: str | None = None) -> None:
        self._values = values
        self.file = file

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def get(self, dotted: str) -> Any:
        table, _, key = dotted.partition(".")
        return self._values[table][key] if key else self._values[table]

    def table(self, name: str) -> dict[str, Any]:
        return dict(self._values[name])


def defaults() -> dict[str, Any]:
    values: dict[str, Any] = {k: _copy(d) for k, (_, d) in SCHEMA.items()}
    for t, keys in TABLES.items():
        values[t] = {k: _copy(d) for k, (_, d) in keys.items()}
    return values


def load(root: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read `root/pyproject.toml` (only if it mentions [tool.runner]) and RUNNER_*."""
    values = defaults()
    path = os.path.join(root, "pyproject.toml")
    section, text = read_section(path)
    if section is not None:
        _apply_file(values, section, path, text)
    environ = os.environ if environ is None else environ
    _apply_env(values, environ)
    if "RUNNER_DOTENV" in environ:
        _settle_dotenv(values, "RUNNER_DOTENV", {})
    elif section is not None and "dotenv" in section:
        where = {"file": path, "line": locate(text, "tool.runner", "dotenv")}
        _settle_dotenv(values, "tool.runner.dotenv", where)
    return Config(values, file=path if section is not None else None)


def _settle_dotenv(values: dict[str, Any], key: str, where: dict[str, Any]) -> None:
    """`dotenv` as a list of files relative to the root. Every task loads them, so they
    are global inputs: a change to one re-runs every cached task."""
    files = values["dotenv"]
    files = [files] if isinstance(files, str) else list(files)
    for f in files:
        bad = (
            "is absolute; name it relative to the project root"
            if f.startswith(("/", "~"))
            else "leaves the project root"
            if ".." in f.replace("\\", "/").split("/")
            else "is a pattern; name each file exactly"
            if any(c in f for c in "*?[!")
            else ""
        )
        if bad:
            raise ConfigError(key, f"{f!r} {bad}", **where)
    values["dotenv"] = files = [f for f in files if f]
    values["global_inputs"] = list(values["global_inputs"]) + [
        f for f in files if f not in values["global_inputs"]
    ]


def read_section(path: str) -> tuple[dict[str, Any] | None, str]:
    """The [tool.runner] table of a pyproject.toml, or None; the file's text."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, ""
    if b"tool.runner" not in raw and b"[tool]" not in raw:
        return None, ""  # no need to pay for a TOML parser
    text = raw.decode("utf-8", errors="replace")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or _line_of_toml_error(str(e))
        raise ConfigError("pyproject.toml", f"invalid TOML: {e}", file=path, line=line) from None
    section = doc.get("tool", {}).get("runner")
    if section is not None and not isinstance(section, dict):
        raise ConfigError("tool.runner", "must be a table", file=path)
    return section, text


def _apply_file(values: dict[str, Any], section: dict[str, Any], path: str, text: str) -> None:
    for key, value in section.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"tool.runner.{key}",
                    "must be a table",
                    file=path,
                    line=locate(text, "tool.runner", key),
                )
            for sub, v in value.items():
                full = f"tool.runner.{key}.{sub}"
                line = locate(text, f"tool.runner.{key}", sub)
                where = {"file": path, "line": line}
                if sub not in TABLES[key]:
                    raise ConfigError(
                        full, "unknown key" + did_you_mean(sub, TABLES[key]), file=path, line=line
                    )
                values[key][sub] = _check(full, TABLES[key][sub][0], v, where)
        elif key in SCHEMA:
            where = {"file": path, "line": locate(text, "tool.runner", key)}
            values[key] = _check(f"tool.runner.{key}", SCHEMA[key][0], value, where)
        else:
            known = list(SCHEMA) + list(TABLES)
            raise ConfigError(
                f"tool.runner.{key}",
                "unknown key" + did_you_mean(key, known),
                file=path,
                line=locate(text, "tool.runner", key),
            )


def _apply_env(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var, text in environ.items():
        if not var.startswith("RUNNER_"):
            continue
        key = var[7:].lower()
        if key in SCHEMA:
            values[key] = _check(var, SCHEMA[key][0], _from_env(SCHEMA[key][0], text), {})
            continue
        table, _, sub = key.partition("_")
        if table in TABLES:
            for name, (kind, _) in TABLES[table].items():
                if name.replace("-", "_") == sub:
                    values[table][name] = _check(var, kind, _from_env(kind, text), {})


def _from_env(kind: str, text: str) -> Any:
    """A RUNNER_* value as the TOML value it stands for."""
    if kind in ("strings", "str-or-strings") and kind != "str":
        return [p.strip() for p in text.split(",") if p.strip()]
    if kind == "bool":
        low = text.strip().lower()
        return {
            "1": True,
            "true": True,
            "yes": True,
            "0": False,
            "false": False,
            "no": False,
            "": False,
        }.get(low, text)
    if kind in ("int", "count", "number"):
        try:
            return int(text) if kind != "number" else float(text)
        except ValueError:
            return text
    return text


def _check(key: str, kind: str, value: Any, where: dict[str, Any]) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(key, f"expected {expected}, got {value!r}", **where)

    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif kind in ("int", "count"):
        least = 1 if kind == "count" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(f"a whole number >= {least}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise bad("a number >= 0")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
    elif "|" in kind:
        choices = kind.split("|")
        if value not in choices:
            raise bad(", ".join(choices[:-1]) + " or " + choices[-1])
    elif kind == "str-or-strings":
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise bad("a string or a list of strings")
    return value


def locate(text: str, table: str, key: str) -> int | None:
    """The line of `key = ...` inside `[table]` (or a dotted `key.x = ...`), best effort:
    TOML parsers do not report where a value came from."""
    current = None
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("[") and not s.startswith("[["):
            current = s.strip("[] ").replace(" ", "")
            if current == f"{table}.{key}":
                return no
            continue
        if current == table:
            name = s.split("=", 1)[0].strip().strip('"').split(".")[0].strip('"')
            if "=" in s and name == key:
                return no
    return None


def _line_of_toml_error(message: str) -> int | None:
    # tomllib's messages end with "(at line N, column M)"
    marker = "at line "
    i = message.rfind(marker)
    if i < 0:
        return None
    digits = ""
    for ch in message[i + len(marker) :]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
