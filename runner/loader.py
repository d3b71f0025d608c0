"""Finding the project and importing its `tasksfile.py`.

The project root is the directory that holds the tasksfile (or the pyproject.toml whose
`[tool.runner] tasksfile` names it), found from the current directory upwards, the way
make and mage find theirs. Errors raised while importing the tasksfile become one
`TasksfileError` naming the file and line.
"""

from __future__ import annotations

import os
import sys

from . import config as config_mod
from . import tasks as tasks_mod
from .errors import TaskDefinitionError, TasksfileError, UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

    from .config import Config
    from .graph import Graph
    from .tasks import Task

DEFAULT_NAME = "tasksfile.py"


class Project:
    """Where the tasks live: the root directory, the tasksfile and the config."""

    __slots__ = ("root", "tasksfile", "config", "plugins")

    def __init__(self, root: str, tasksfile: str, config: Config) -> None:
        self.root = root
        self.tasksfile = tasksfile
        self.config = config
        self.plugins: Any = None  # runner.hooks.Plugins, once loaded (if there are any)

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.root, self.config.cache_dir)


class NoTasksfileError(UserError):
    """No tasksfile in the directory or any parent."""


def find_project(
    start: str, file: str | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    """The project for a run started in `start` (or for `-f FILE`)."""
    environ = os.environ if environ is None else environ
    start = os.path.abspath(start)
    if file is None:
        file = environ.get("RUNNER_TASKSFILE") or None
    if file is not None:
        path = os.path.abspath(os.path.join(start, file))  # relative to -C DIR
        if not os.path.isfile(path):
            raise NoTasksfileError(f"tasksfile {path} does not exist")
        root = os.path.dirname(path)
        return Project(root, path, config_mod.load(root, environ))
    d = start
    while True:
        found = _tasksfile_in(d)
        if found:
            return Project(d, found, config_mod.load(d, environ))
        parent = os.path.dirname(d)
        if parent == d:
            raise NoTasksfileError(
                f"no {DEFAULT_NAME} in {start} or any parent directory "
                "(create one with `runner init`)"
            )
        d = parent


def _tasksfile_in(d: str) -> str | None:
    """The tasksfile that directory `d` declares or holds, if any."""
    py = os.path.join(d, "pyproject.toml")
    if os.path.isfile(py):
        section, text = config_mod.read_section(py)
        if section is not None and "tasksfile" in section:
            name = section["tasksfile"]
            if not isinstance(name, str):
                raise config_mod.ConfigError(
                    "tool.runner.tasksfile",
                    f"expected a string, got {name!r}",
                    file=py,
                    line=config_mod.locate(text, "tool.runner", "tasksfile"),
                )
            path = os.path.join(d, name)
            if not os.path.isfile(path):
                raise NoTasksfileError(
                    f"{py}: tool.runner.tasksfile names {name!r}, which does not exist"
                )
            return path
    path = os.path.join(d, DEFAULT_NAME)
    return path if os.path.isfile(path) else None


def load_tasks(
    path: str,
    root: str,
    cache_dir: str | None = None,
    may_write: bool = False,
    source: bytes | None = None,
) -> list[Task]:
    """Import the tasksfile as module `tasksfile` and return the tasks it defined.
    `cache_dir`: where to keep its compiled code when Python may not (see
    `_cached_code`); `may_write`: this command may write state; `source`: the
    tasksfile's text as it was read before (what `runner watch` runs its server from),
    instead of what the file holds now."""
    # importlib.machinery is already loaded at start-up; importlib.util costs ~3 ms.
    from importlib.machinery import ModuleSpec, SourceFileLoader
    from types import ModuleType

    if root not in sys.path:
        sys.path.insert(0, root)  # so that the tasksfile can import the project's modules
    loader = SourceFileLoader("tasksfile", path)
    module = ModuleType("tasksfile")
    module.__file__ = path
    module.__loader__ = loader
    module.__spec__ = ModuleSpec("tasksfile", loader, origin=path)
    tasks_mod.collect()  # forget tasks from an earlier load (watch reloads the tasksfile)
    previous = sys.modules.get("tasksfile")
    sys.modules["tasksfile"] = module
    try:
        code: Any
        if source is not None:
            code = compile(source, path, "exec", dont_inherit=True)
        else:
            code = _cached_code(path, cache_dir, may_write) if cache_dir else None
        if code is None:
            loader.exec_module(module)
        else:
            exec(code, module.__dict__)
    except SyntaxError as e:
        sys.modules.pop("tasksfile", None)
        raise TasksfileError(
            f"syntax error: {e.msg}", file=e.filename or path, line=e.lineno
        ) from e
    except TaskDefinitionError as e:
        sys.modules.pop("tasksfile", None)
        file, line = _user_frame(e, path)
        if file is None:
            raise
        raise e.located(file, line) from e
    except UserError:
        sys.modules.pop("tasksfile", None)
        raise
    except Exception as e:
        sys.modules.pop("tasksfile", None)
        file, line = _user_frame(e, path)
        raise TasksfileError(f"{type(e).__name__}: {e}", file=file or path, line=line) from e
    finally:
        if previous is not None and sys.modules.get("tasksfile") is None:
            sys.modules["tasksfile"] = previous
    return tasks_mod.collect()


def load_graph(project: Project, err: TextIO, *, may_write: bool = False) -> Graph:
    """The project's tasks as a graph: the tasksfile's, then those its plugins add
    (the plugins are loaded into `project.plugins`)."""
    from .graph import Graph

    tasks = load_tasks(project.tasksfile, project.root, project.cache_dir, may_write=may_write)
    found = plugin_targets(project)
    if found:
        from .hooks import load as load_plugins

        project.plugins = load_plugins(project, found, err)
        tasks += project.plugins.add_tasks(project)
    return Graph(tasks)


def _cached_code(path: str, cache_dir: str, may_write: bool) -> Any:
    """The tasksfile's compiled code, when Python is told not to keep compiled modules
    (PYTHONDONTWRITEBYTECODE, common in containers and CI): then runner keeps it in
    its cache directory, keyed by the file's stat data, as Python keeps __pycache__.
    (Compiling a 1,000-task tasksfile costs more than the rest of a no-op run.)
    None when Python's own cache is in use."""
    if not sys.dont_write_bytecode:
        return None
    import marshal

    from .fsclock import racy

    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        source = f.read()
    header = (
        f"runner-code {sys.implementation.cache_tag} {sys.version}\0{path}\0"
        f"{st.st_mtime_ns} {st.st_ctime_ns} {st.st_size} {st.st_ino}\0"
    ).encode()
    cached = os.path.join(cache_dir, "tasksfile.code")
    try:
        with open(cached, "rb") as f:
            data = f.read()
        if data.startswith(header):
            return marshal.loads(data[len(header) :])
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = compile(source, path, "exec", dont_inherit=True)
    import time

    if may_write and not racy(st.st_mtime_ns, st.st_ctime_ns, time.time_ns()):
        try:
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{cached}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(header + marshal.dumps(code))
            os.replace(tmp, cached)
        except OSError:
            pass  # a cache, nothing more
    return code


def _user_frame(exc: BaseException, path: str) -> tuple[str | None, int]:
    """The innermost frame of the traceback that is outside runner's own package: where
    the user's code raised (the tasksfile, or a module it imports)."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    found: tuple[str | None, int] = (None, 0)
    tb = exc.__traceback__
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if not fname.startswith(here) and not fname.startswith("<frozen"):
            found = (fname, tb.tb_lineno)
        tb = tb.tb_next
    return found


def plugin_targets(project: Project) -> list[tuple[str, str]]:
    """(name, what to import) of every plugin: the `runner.plugins` entry points of
    installed packages, then `[tool.runner] plugins`. Finding none costs a scan of the
    site-packages directories (a fraction of a millisecond; importlib.metadata would
    take about 30), and runner.hooks, with pluggy, is imported only when some are found."""
    found = []
    for d in sys.path:
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(d, n, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if "[runner.plugins]" in text:
                found += _ini_section(text, "runner.plugins")
    return found + [(p, p) for p in project.config.plugins]


def _ini_section(text: str, name: str) -> list[tuple[str, str]]:
    out, inside = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            inside = s == f"[{name}]"
        elif inside and "=" in s and not s.startswith(("#", ";")):
            key, _, value = s.partition("=")
            out.append((key.strip(), value.strip()))
    return out
