"""`Task` and the `@task` decorator: what a task is, validated when it is defined.

Everything here runs while a tasksfile is imported, on the path of `runner --list`, so
it costs microseconds per task: no `inspect`, no `re`, no `dataclasses` (importing those
three costs more than loading a 100-task tasksfile). The function's signature is read
straight from its code object.
"""

from __future__ import annotations

from .errors import TaskDefinitionError, did_you_mean

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins  # typing costs milliseconds at start-up; annotations only need it here
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_NAME_CHARS = _NAME_START | frozenset(".-")
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_CI_KEYS = (
    "runs-on",
    "matrix",
    "secrets",
    "env",
    "timeout-minutes",
    "needs_setup",
    "permissions",
    "dispatch",
    "if",
    "services",
    "environment",
)


def valid_name(name: str) -> bool:
    """`build`, `docs:build`, `py3.11-test`: segments of [A-Za-z0-9_.-] joined by ':',
    each starting with a letter, digit or '_' (never '-': it would read as an option)."""
    if not isinstance(name, str) or not name:
        return False
    for seg in name.split(":"):
        if not seg or seg[0] not in _NAME_START or not set(seg) <= _NAME_CHARS:
            return False
    return True


class _Frozen:
    """Instances are immutable once built, like a frozen dataclass."""

    __slots__ = ()

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: object) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)


class Param(_Frozen):
    """One task argument, taken from the function's signature: `--name value`."""

    __slots__ = ("name", "type", "default")

    name: str
    type: builtins.type
    default: Any

    def __init__(self, name: str, type_: builtins.type, default: Any) -> None:
        self._set(name=name, type=type_, default=default)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def metavar(self) -> str:
        return {str: "TEXT", int: "INT", float: "NUMBER", bool: ""}[self.type]

    def convert(self, text: str) -> Any:
        """The value of `--name=text`; ValueError with the reason when it is not one."""
        if self.type is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.option} expects true or false, got {text!r}")
        if self.type is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{self.option} expects an integer, got {text!r}") from None
        if self.type is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{self.option} expects a number, got {text!r}") from None
        return text

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.type.__name__}, {self.default!r})"


class Task(_Frozen):
    """A task: a function plus what it needs (deps), reads (inputs), makes (outputs)
    and how it is run. Built by `@task`; never changed afterwards."""

    __slots__ = (
        "name",
        "fn",
        "deps",
        "inputs",
        "outputs",
        "env",
        "cache",
        "default",
        "aliases",
        "timeout",
        "retries",
        "service",
        "ci",
        "schedule",
        "params",
        "extra",
        "cwd",
        "dotenv",
        "tools",
        "file",
        "line",
    )

    name: str
    fn: Callable[..., Any]
    deps: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    env: tuple[str, ...]
    cache: bool
    default: bool
    aliases: tuple[str, ...]
    timeout: float | None
    retries: int
    service: bool
    ci: Mapping[str, Any]
    schedule: str | None
    params: tuple[Param, ...]
    extra: str | None  # the `*args` parameter that takes the words after `--`
    cwd: str | None  # the working directory, relative to the project root
    dotenv: tuple[str, ...]  # .env files whose variables reach the task
    tools: tuple[str, ...]  # executables or Python distributions in the key
    file: str
    line: int

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        deps: Iterable[Task | str] = (),
        inputs: Iterable[str] | str = (),
        outputs: Iterable[str] | str = (),
        env: Iterable[str] | str = (),
        cache: bool | None = None,
        default: bool = False,
        aliases: Iterable[str] | str = (),
        timeout: float | None = None,
        retries: int = 0,
        service: bool = False,
        ci: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        cwd: str | None = None,
        dotenv: Iterable[str] | str = (),
        tools: Iterable[str] | str = (),
    ) -> None:
        if not callable(fn):
            raise TaskDefinitionError(repr(fn), None, "@task must decorate a function")
        code = getattr(fn, "__code__", None)
        if name is None:
            name = getattr(fn, "__name__", "").strip("_").replace("_", "-")
        if not valid_name(name):
            raise TaskDefinitionError(
                str(name),
                "name",
                "a task name is letters, digits, "
                "'_', '.', '-' (not first), with ':' between namespaces",
            )
        bad = _Check(name)
        put = object.__setattr__  # once validated, each value is set once (see _Frozen)
        put(self, "name", name)
        put(self, "fn", fn)
        put(self, "deps", bad.deps(deps))
        declared = bad.paths("inputs", inputs)
        dotenv_files = bad.files("dotenv", dotenv)
        # The .env files it loads are inputs: their content reaches its commands.
        put(self, "inputs", declared + tuple(f for f in dotenv_files if f not in declared))
        put(self, "outputs", bad.paths("outputs", outputs))
        put(self, "env", bad.env(env))
        put(self, "cache", bad.cache(cache, inputs, service))
        put(self, "default", bad.flag("default", default))
        put(self, "aliases", bad.aliases(aliases))
        put(self, "timeout", bad.timeout(timeout))
        put(self, "retries", bad.retries(retries))
        put(self, "service", bad.flag("service", service))
        put(self, "ci", bad.ci(ci))
        put(self, "schedule", bad.schedule(schedule))
        params, extra = _params(name, fn)
        put(self, "params", params)
        put(self, "extra", extra)
        put(self, "cwd", bad.cwd(cwd))
        put(self, "dotenv", dotenv_files)
        put(self, "tools", bad.tools(tools))
        put(self, "file", code.co_filename if code else "<unknown>")
        put(self, "line", code.co_firstlineno if code else 0)

    @property
    def doc(self) -> str:
        """The function's docstring, without its source indentation."""
        return _cleandoc(getattr(self.fn, "__doc__", None) or "")

    @property
    def summary(self) -> str:
        """The docstring's first line: what `--list` shows."""
        doc = self.doc
        return doc.splitlines()[0].strip() if doc else ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def default_args(self) -> dict[str, Any]:
        values = {p.name: p.default for p in self.params if not p.required}
        if self.extra is not None:
            values[self.extra] = ()
        return values

    def call(self, values: Mapping[str, Any]) -> Any:
        """Run the function with these argument values (the options by name, the
        words after `--` as its `*args`)."""
        if self.extra is None:
            return self.fn(**values)
        code = self.fn.__code__
        positional = code.co_varnames[: code.co_argcount]
        named = {k: v for k, v in values.items() if k not in positional and k != self.extra}
        words = tuple(values.get(self.extra, ()))
        return self.fn(*(values[n] for n in positional), *words, **named)


def _cleandoc(doc: str) -> str:
    """A docstring without its source indentation (inspect.cleandoc's rule: the first
    line is stripped, the others lose their common leading whitespace)."""
    lines = doc.expandtabs().splitlines()
    if not lines:
        return ""
    rest = lines[1:]
    indents = [len(ln) - len(ln.lstrip()) for ln in rest if ln.strip()]
    cut = min(indents) if indents else 0
    return "\n".join([lines[0].strip()] + [ln[cut:].rstrip() for ln in rest]).strip()


class _Check:
    """The validators of `@task`'s parameters; each names the task and the parameter."""

    def __init__(self, task: str) -> None:
        self.task = task

    def fail(self, param: str, problem: str) -> TaskDefinitionError:
        return TaskDefinitionError(self.task, param, problem)

    def strings(self, param: str, value: Iterable[str] | str) -> tuple[str, ...]:
        if value == ():
            return ()
        if isinstance(value, str):
            value = (value,)
        try:
            items = tuple(value)
        except TypeError:
            raise self.fail(
                param, f"expected a list of strings, got {type(value).__name__}"
            ) from None
        for item in items:
            if not isinstance(item, str) or not item:
                raise self.fail(param, f"expected a list of non-empty strings, got {item!r}")
        return items

    def paths(self, param: str, value: Iterable[str] | str) -> tuple[str, ...]:
        items = self.strings(param, value)
        for p in items:
            body = p[1:] if p.startswith("!") else p
            if body.startswith(("/", "~")) or (len(body) > 1 and body[1] == ":"):
                raise self.fail(
                    param, f"{p!r} is absolute; patterns are relative to the project root"
                )
            if ".." in body.replace("\\", "/").split("/"):
                raise self.fail(param, f"{p!r} leaves the project root")
        return items

    def cwd(self, value: str | None) -> str | None:
        """A directory relative to the project root, inside it; None for the root."""
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(
                "cwd", f"expected a directory relative to the project root, got {value!r}"
            )
        self.paths("cwd", value)
        parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
        return "/".join(parts) or None

    def files(self, param: str, value: Iterable[str] | str) -> tuple[str, ...]:
        """Files named exactly (no patterns), relative to the project root."""
        items = self.paths(param, value)
        for f in items:
            if f.startswith("!") or any(c in f for c in "*?["):
                raise self.fail(param, f"{f!r} is a pattern; name each file exactly")
        return items

    def tools(self, value: Iterable[str] | str) -> tuple[str, ...]:
        names = self.strings("tools", value)
        for n in names:
            if "\0" in n or n != n.strip():
                raise self.fail(
                    "tools", f"{n!r} is not the name of an executable or a distribution"
                )
        return tuple(dict.fromkeys(names))

    def deps(self, value: Iterable[Task | str]) -> tuple[str, ...]:
        if value == ():
            return ()
        if isinstance(value, (str, Task)):
            value = (value,)
        names: dict[str, None] = {}  # in order, each once
        try:
            items = list(value)
        except TypeError:
            raise self.fail(
                "deps", f"expected a list of tasks or task names, got {type(value).__name__}"
            ) from None
        for d in items:
            if isinstance(d, Task):
                d = d.name
            elif not isinstance(d, str):
                raise self.fail("deps", f"expected a task or a task name, got {d!r}")
            names[d] = None
        return tuple(names)

    def env(self, value: Iterable[str] | str) -> tuple[str, ...]:
        if value == ():
            return ()
        names = self.strings("env", value)
        for n in names:
            if "=" in n or "\0" in n:
                raise self.fail("env", f"{n!r} is not an environment variable name")
        return tuple(sorted(set(names)))

    def flag(self, param: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.fail(param, f"expected True or False, got {value!r}")
        return value

    def cache(self, value: bool | None, inputs: object, service: bool) -> bool:
        if value is None:
            return bool(inputs) and not service
        value = self.flag("cache", value)
        if value and service:
            raise self.fail("cache", "a service task is never cached")
        return value

    def aliases(self, value: Iterable[str] | str) -> tuple[str, ...]:
        if value == ():
            return ()
        names = self.strings("aliases", value)
        for a in names:
            if not valid_name(a):
                raise self.fail("aliases", f"{a!r} is not a valid task name")
            if a == self.task:
                raise self.fail("aliases", f"{a!r} is the task's own name")
        return names

    def timeout(self, value: float | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail("timeout", f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def retries(self, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail("retries", f"expected a whole number >= 0, got {value!r}")
        return value

    def ci(self, value: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if value is None:
            return {}
        if value is True:
            return {"job": True}
        if not isinstance(value, dict):
            raise self.fail(
                "ci", f"expected a mapping of GitHub Actions settings, got {type(value).__name__}"
            )
        for key in value:
            if key not in _CI_KEYS:
                raise self.fail("ci", f"unknown setting {key!r}{did_you_mean(str(key), _CI_KEYS)}")
        return dict(value)

    def schedule(self, value: str | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value.split()) != 5:
            raise self.fail(
                "schedule",
                f"expected a cron expression of 5 fields "
                f"(minute hour day month weekday), got {value!r}",
            )
        for field, (what, low, high, names) in zip(value.split(), _CRON_FIELDS, strict=True):
            problem = _cron_field_problem(field, low, high, names)
            if problem:
                raise self.fail("schedule", f"{what} field {field!r} of {value!r}: {problem}")
        return value


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 6, _DAYS),
)


def _cron_field_problem(field: str, low: int, high: int, names: tuple[str, ...]) -> str:
    """What is wrong with one field of a cron expression ('' if nothing): `*`, `*/n`,
    `a`, `a-b`, `a-b/n` and lists of those, as GitHub Actions accepts them."""
    for item in field.split(","):
        body, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            return f"bad step {step!r}"
        if body == "*":
            continue
        for bound in body.split("-", 1):
            if bound.lower() in names:
                continue
            if not bound.isdigit():
                return f"{bound!r} is not a number" + (
                    f" or a name ({names[0]}...)" if names else ""
                )
            if not low <= int(bound) <= high:
                return f"{bound} is out of range {low}-{high}"
    return ""


def _params(task: str, fn: Callable[..., Any]) -> tuple[tuple[Param, ...], str | None]:
    """The task's options, read from the function's code object and annotations, and
    the name of its `*args` parameter (the words after `--`), if it has one."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return (), None
    n_named = code.co_argcount + code.co_kwonlyargcount
    annotations = getattr(fn, "__annotations__", {}) or {}
    if code.co_flags & 0x08:  # CO_VARKEYWORDS
        star = code.co_varnames[n_named + (1 if code.co_flags & 0x04 else 0)]
        raise TaskDefinitionError(
            task, star, f"**{star} cannot become options; declare each option as a parameter"
        )
    extra = None
    if code.co_flags & 0x04:  # CO_VARARGS: the words after `--`
        extra = code.co_varnames[n_named]
        if annotations.get(extra, str) not in (str, "str"):
            raise TaskDefinitionError(
                task, extra, f"*{extra} takes the words after --: annotate it `str` or not at all"
            )
    if code.co_posonlyargcount:
        raise TaskDefinitionError(task, None, "positional-only parameters cannot become options")
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames[: n_pos + n_kw]
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    params = []
    for i, pname in enumerate(names):
        if i < n_pos:
            j = i - (n_pos - len(defaults))
            default = defaults[j] if j >= 0 else REQUIRED
        else:
            default = kwdefaults.get(pname, REQUIRED)
        if pname == "help":
            raise TaskDefinitionError(task, pname, "'--help' is taken by runner; rename it")
        params.append(
            Param(pname, _param_type(task, pname, annotations.get(pname), default), default)
        )
    return tuple(params), extra


def _param_type(task: str, pname: str, annotation: object, default: object) -> type:
    if annotation is None:
        if default is REQUIRED or default is None:
            return str
        annotation = type(default)
    if isinstance(annotation, str):
        annotation = _TYPES.get(annotation.strip(), annotation)
    if annotation not in (str, int, float, bool):
        shown = getattr(annotation, "__name__", annotation)
        raise TaskDefinitionError(
            task, pname, f"type {shown} cannot be an option; use str, int, float or bool"
        )
    if default is not REQUIRED and default is not None:
        ok = (
            isinstance(default, annotation)
            if annotation is not float
            else isinstance(default, (int, float))
        )
        if not ok or (annotation is int and isinstance(default, bool)):
            raise TaskDefinitionError(
                task, pname, f"default {default!r} is not a {annotation.__name__}"
            )
    return annotation


# Tasks defined since the last `collect()`: the loader empties this before it imports
# a tasksfile and takes what the import defined.
_defined: list[Task] = []


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a task: `@task` or `@task(deps=[...], inputs=[...], ...)`."""

    def decorate(f: Callable[..., Any]) -> Task:
        if isinstance(f, Task):
            raise TaskDefinitionError(f.name, None, "@task is applied twice")
        for key in options:
            if key not in _OPTIONS:
                name = options.get("name") or getattr(f, "__name__", "?")
                raise TaskDefinitionError(
                    str(name), key, "unknown parameter" + did_you_mean(key, _OPTIONS)
                )
        t = Task(f, **options)
        _defined.append(t)
        return t

    if fn is not None:
        return decorate(fn)
    return decorate


# The parameters of @task are those of Task.__init__ after the function.
_OPTIONS = Task.__init__.__code__.co_varnames[
    Task.__init__.__code__.co_argcount : Task.__init__.__code__.co_argcount
    + Task.__init__.__code__.co_kwonlyargcount
]


def collect() -> list[Task]:
    """The tasks defined since the last call, in definition order."""
    out = list(_defined)
    _defined.clear()
    return out
