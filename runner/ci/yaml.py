"""A deterministic YAML writer for the generated workflows: block style, keys in their
given order, and every string quoted whenever some YAML reader could take it for anything
else, so that the same data always gives the same bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


@dataclass(frozen=True)
class Commented:
    """A scalar with a comment after it on its line (`uses: x@sha # v4.2.2`)."""

    value: str
    comment: str


# Words some YAML reader takes for a boolean or null (YAML 1.1 and 1.2 both).
RESERVED = frozenset(("y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"))
FLOW_ITEM = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")


def to_yaml(doc: dict[str, Any], indent: int = 0) -> str:
    """Block-style YAML for plain data (dicts, lists, strings, numbers, booleans, None),
    keys in their given order; strings quoted whenever a reader could take them for
    anything else. `indent` spaces go before every top-level key (to nest the text)."""
    return "".join(_lines(_mapping_lines(doc, indent)))


def _lines(lines: Iterable[str]) -> Iterator[str]:
    return (line + "\n" for line in lines)


def _mapping_lines(mapping: dict[str, Any], indent: int) -> Iterator[str]:
    for key, value in mapping.items():
        yield from _entry(" " * indent + _scalar(key) + ":", value, indent)


def _sequence_lines(items: list[Any], indent: int) -> Iterator[str]:
    pad = " " * indent
    for item in items:
        if isinstance(item, dict) and item:
            lines = list(_mapping_lines(item, indent + 2))
            yield pad + "- " + lines[0][indent + 2 :]
            yield from lines[1:]
        else:
            yield from _entry(pad + "-", item, indent)


def _entry(head: str, value: Any, indent: int) -> Iterator[str]:
    """`head` (a key and its colon, or a dash) followed by the value."""
    if isinstance(value, dict) and value:
        yield head
        yield from _mapping_lines(value, indent + 2)
    elif isinstance(value, list) and value:
        flow = _flow(value)
        if flow and len(head) + len(flow) < 100:
            yield f"{head} {flow}"
        else:
            yield head
            yield from _sequence_lines(value, indent + 2)
    elif value is None:
        yield head
    elif isinstance(value, str) and _literal_block(value):
        body = value.rstrip("\n")
        yield f"{head} {'|' if value.endswith(chr(10)) else '|-'}"
        pad = " " * (indent + 2)
        yield from (pad + line if line else "" for line in body.split("\n"))
    else:
        yield f"{head} {_scalar(value)}"


def _flow(items: list[Any]) -> str | None:
    """`[a, b]` for a list of simple names."""
    if all(isinstance(i, str) and FLOW_ITEM.match(i) and _plain(i) for i in items):
        return "[" + ", ".join(items) + "]"
    return None


def _scalar(value: Any) -> str:
    if isinstance(value, Commented):
        return f"{_scalar(value.value)} # {value.comment}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text or "e" not in text else text.replace("e", ".0e", 1)
    if isinstance(value, dict):
        return "{}"  # only empty ones get here
    if isinstance(value, list):
        return "[]"
    text = str(value)
    if _plain(text):
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _plain(text: str) -> bool:
    """Whether `text` reads back as this same string without quotes, in any YAML reader."""
    if not text or text != text.strip() or not text.isascii() or not text.isprintable():
        return False
    first = text[0]
    if first in "-?:,[]{}#&*!|>'\"%@`~=<+" or first.isdigit():
        return False
    if first == "." and not (len(text) > 1 and text[1] in "/_" or text[1:2].isalpha()):
        return False
    if ": " in text or " #" in text or text.endswith(":"):
        return False
    return text.lower() not in RESERVED and text.lower() not in (".inf", ".nan")


def _literal_block(text: str) -> bool:
    """Whether a multi-line string can be written as a `|` block, read back unchanged."""
    if "\n" not in text or text.endswith("\n\n"):
        return False
    lines = text.rstrip("\n").split("\n")
    if not lines[0] or lines[0][0] in " \t":
        return False  # the block's indentation would be read from this line
    return all(
        (line.isprintable() or "\t" in line and line.replace("\t", "").isprintable())
        and (line.strip() or not line)
        for line in lines
    )


def _double_quoted(text: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
    out = []
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'
