"""`[tool.runner-notify]` in pyproject.toml, then `RUNNER_NOTIFY_*` variables, as one
checked `Settings`. A bad value names the key (and its line), as runner's own
configuration errors do."""

from __future__ import annotations

import os

from runner.config import locate
from runner.errors import ConfigError, did_you_mean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

TABLE = "tool.runner-notify"
# key -> (kind, default)
KEYS: dict[str, tuple[str, Any]] = {
    "after": ("seconds", 30.0),
    "bell": ("bool", True),
    "desktop": ("bool", False),
    "webhook": ("url", ""),
    "timeout": ("seconds", 5.0),
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class Settings:
    __slots__ = tuple(KEYS)

    after: float
    bell: bool
    desktop: bool
    webhook: str
    timeout: float

    def __init__(self, values: dict[str, Any]) -> None:
        for key, (_kind, default) in KEYS.items():
            setattr(self, key, values.get(key, default))


def read_settings(root: str, environ: Mapping[str, str]) -> Settings:
    path = os.path.join(root, "pyproject.toml")
    table, text = _read_table(path)
    values: dict[str, Any] = {}
    for key, value in table.items():
        line = locate(text, TABLE, key)
        if key not in KEYS:
            raise ConfigError(
                f"{TABLE}.{key}", "unknown key" + did_you_mean(key, KEYS), file=path, line=line
            )
        values[key] = _check(f"{TABLE}.{key}", KEYS[key][0], value, path, line)
    for key, (kind, _default) in KEYS.items():
        var = f"RUNNER_NOTIFY_{key.upper()}"
        if var in environ:
            values[key] = _check(var, kind, _from_env(kind, environ[var]), None, None)
    return Settings(values)


def _read_table(path: str) -> tuple[dict[str, Any], str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, ""
    if "runner-notify" not in text:
        return {}, text
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        table = tomllib.loads(text).get("tool", {}).get("runner-notify", {})
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("pyproject.toml", f"invalid TOML: {e}", file=path) from None
    if not isinstance(table, dict):
        raise ConfigError(TABLE, "must be a table", file=path)
    return table, text


def _from_env(kind: str, text: str) -> Any:
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return text
    if kind == "seconds":
        try:
            return float(text)
        except ValueError:
            return text
    return text.strip()


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _check(key: str, kind: str, value: Any, file: str | None, line: int | None) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(key, f"expected {expected}, got {value!r}", file=file, line=line)

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind == "seconds":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise bad("a number of seconds >= 0")
        value = float(value)
    elif kind == "url" and not (value == "" or _is_url(value)):
        raise bad("an http:// or https:// URL")
    return value
