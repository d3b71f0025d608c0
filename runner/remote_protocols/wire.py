"""The protocol buffers wire format, for the few messages the remote cache protocols
exchange, on the standard library alone.

The Bazel HTTP cache keeps an action result as a serialized `ActionResult` message, and
an `http://` remote cache must not need protobuf installed (nor pay for importing it):
so messages are classes of this module's `Message`, each listing its fields (number,
name, kind) as the published .proto files define them (runner.remote_protocols.messages),
and encoded and decoded here. gRPC takes any serializer, so the gRPC client uses the
same classes; one definition of each message serves both protocols.

Encoding follows proto3: fields in number order, a field at its default value (0, "",
b"", False, empty, None) left out, repeated numbers packed. Decoding reads what any
proto3 encoder writes (packed or not, fields in any order, unknown fields skipped) and
is strict about the rest: what is read comes from a server, untrusted, so anything that
is not well-formed raises `DecodeError` and never an IndexError or a partial message.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

# Kinds of field, and the wire type each is carried in.
STRING, BYTES, INT64, INT32, UINT32, BOOL, ENUM, MESSAGE = range(8)
VARINT, I64, LEN, I32 = 0, 1, 2, 5
_NUMERIC = (INT64, INT32, UINT32, BOOL, ENUM)
_MASK64 = (1 << 64) - 1


class DecodeError(ValueError):
    """Bytes that are not an encoding of the message they were read as."""


class Field:
    """One field of a message: its number and name in the .proto file, its kind, the
    message class of a MESSAGE field, and whether it is repeated."""

    __slots__ = ("number", "name", "kind", "message", "repeated")

    def __init__(
        self,
        number: int,
        name: str,
        kind: int,
        message: type[Message] | None = None,
        repeated: bool = False,
    ) -> None:
        self.number = number
        self.name = name
        self.kind = kind
        self.message = message
        self.repeated = repeated

    def default(self) -> Any:
        if self.repeated:
            return ()
        if self.kind == STRING:
            return ""
        if self.kind == BYTES:
            return b""
        if self.kind == MESSAGE:
            return None
        return False if self.kind == BOOL else 0


class Message:
    """A message: keyword arguments for its fields (a repeated one as a sequence,
    kept as a tuple; an unset message field is None), `encode()` and `decode(data)`."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _BY_NUMBER: ClassVar[dict[int, Field]] = {}

    def __init_subclass__(cls) -> None:  # checks a definition and indexes its fields
        names = [f.name for f in cls.FIELDS]
        assert tuple(names) == cls.__slots__, f"{cls.__name__}: __slots__ must list FIELDS"
        cls.FIELDS = tuple(sorted(cls.FIELDS, key=lambda f: f.number))
        cls._BY_NUMBER = {f.number: f for f in cls.FIELDS}

    def __init__(self, **values: Any) -> None:
        for f in self.FIELDS:
            value = values.pop(f.name, None)
            if value is None:
                value = f.default()
            elif f.repeated:
                value = tuple(value)
            setattr(self, f.name, value)
        if values:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(values)}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self.FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in self.FIELDS))

    def __repr__(self) -> str:
        set_fields = (
            f"{f.name}={getattr(self, f.name)!r}"
            for f in self.FIELDS
            if getattr(self, f.name) != f.default()
        )
        return f"{type(self).__name__}({', '.join(set_fields)})"

    def encode(self) -> bytes:
        out = bytearray()
        for f in self.FIELDS:
            value = getattr(self, f.name)
            if f.repeated:
                _put_repeated(out, f, value)
            elif value != f.default() or (f.kind == MESSAGE and value is not None):
                _put(out, f, value)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Any:
        """The message `data` encodes (DecodeError if it does not)."""
        view = memoryview(data)
        values: dict[str, Any] = {}
        pos = 0
        while pos < len(view):
            key, pos = _varint(view, pos)
            number, wire = key >> 3, key & 7
            f = cls._BY_NUMBER.get(number)
            if f is None:
                pos = _skip(view, pos, wire)
                continue
            if f.repeated and f.kind in _NUMERIC and wire == LEN:  # packed
                chunk, pos = _length_delimited(view, pos)
                values.setdefault(f.name, []).extend(_packed(chunk, f))
                continue
            value, pos = _value(view, pos, wire, f)
            if f.repeated:
                values.setdefault(f.name, []).append(value)
            else:
                values[f.name] = value  # proto3: the last one wins
        return cls(**values)


# ---------------------------------------------------------------- encoding


def _put_repeated(out: bytearray, f: Field, values: tuple[Any, ...]) -> None:
    if not values:
        return
    if f.kind in _NUMERIC:
        packed = bytearray()
        for v in values:
            _put_varint(packed, _numeric(f, v))
        _put_varint(out, f.number << 3 | LEN)
        _put_varint(out, len(packed))
        out += packed
        return
    for v in values:
        _put(out, f, v)


def _put(out: bytearray, f: Field, value: Any) -> None:
    if f.kind in _NUMERIC:
        _put_varint(out, f.number << 3 | VARINT)
        _put_varint(out, _numeric(f, value))
        return
    if f.kind == STRING:
        raw: bytes = value.encode()
    elif f.kind == BYTES:
        raw = bytes(value)
    else:
        if not isinstance(value, f.message):  # type: ignore[arg-type]
            raise TypeError(f"{f.name}: a {type(value).__name__} where a message belongs")
        raw = value.encode()
    _put_varint(out, f.number << 3 | LEN)
    _put_varint(out, len(raw))
    out += raw


def _numeric(f: Field, value: Any) -> int:
    if f.kind == BOOL:
        return 1 if value else 0
    if not isinstance(value, int):
        raise TypeError(f"{f.name}: {value!r} where a number belongs")
    if f.kind == UINT32:
        return value & 0xFFFFFFFF
    return value & _MASK64  # negative numbers as 64-bit two's complement, as proto3 does


def _put_varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


# ---------------------------------------------------------------- decoding


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(view):
            raise DecodeError("truncated number")
        byte = view[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("a number longer than 10 bytes")


def _length_delimited(view: memoryview, pos: int) -> tuple[memoryview, int]:
    length, pos = _varint(view, pos)
    end = pos + length
    if end > len(view):
        raise DecodeError("a field longer than its message")
    return view[pos:end], end


def _skip(view: memoryview, pos: int, wire: int) -> int:
    """Past an unknown field (a newer version's): its wire type says how long it is."""
    if wire == VARINT:
        return _varint(view, pos)[1]
    if wire == LEN:
        return _length_delimited(view, pos)[1]
    size = {I64: 8, I32: 4}.get(wire)
    if size is None:  # the deprecated groups (3, 4) or no wire type at all
        raise DecodeError(f"wire type {wire}")
    if pos + size > len(view):
        raise DecodeError("truncated fixed-size field")
    return pos + size


def _value(view: memoryview, pos: int, wire: int, f: Field) -> tuple[Any, int]:
    if f.kind in _NUMERIC:
        if wire != VARINT:
            raise DecodeError(f"{f.name}: wire type {wire} where a number belongs")
        n, pos = _varint(view, pos)
        return _number(f, n), pos
    if wire != LEN:
        raise DecodeError(f"{f.name}: wire type {wire} where bytes belong")
    chunk, pos = _length_delimited(view, pos)
    if f.kind == BYTES:
        return bytes(chunk), pos
    if f.kind == STRING:
        try:
            return str(chunk, "utf-8"), pos
        except UnicodeDecodeError:
            raise DecodeError(f"{f.name}: text that is not UTF-8") from None
    assert f.message is not None
    return f.message.decode(chunk), pos


def _packed(chunk: memoryview, f: Field) -> list[Any]:
    found = []
    pos = 0
    while pos < len(chunk):
        n, pos = _varint(chunk, pos)
        found.append(_number(f, n))
    return found


def _number(f: Field, n: int) -> int | bool:
    if f.kind == BOOL:
        return n != 0
    if f.kind == UINT32:
        return n & 0xFFFFFFFF
    if f.kind == INT64:
        n &= _MASK64
        return n - (1 << 64) if n >> 63 else n
    n &= 0xFFFFFFFF  # int32 and enums: sent sign-extended to 64 bits, kept to 32
    return n - (1 << 32) if n >> 31 else n
