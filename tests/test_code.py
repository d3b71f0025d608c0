"""SPEC §1 (the cache key: "the task's code"), README "What makes a task run again": what
the digest of a task's code covers, one test per promise.

Each test builds a project, runs a task, changes one thing and runs it again: a change
the task's code depends on must run it again (a false hit is the worst bug), a change
it does not depend on must not (runs.log counts real runs). The last section checks the
other direction: an unchanged project stays up to date, and the digest is the same in
every process.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import Project, clean_env
from test_cache import HEX64, edit_tasksfile, ok, runs, tasks


def rerun_after(project, change) -> int:
    """Run `build`, apply `change`, run `build` again: how many times it ran (its
    only task)."""
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    change()
    ok(project, "build")
    return runs(project)


# ---------------------------------------------------------------- imports in the task's body

@pytest.mark.parametrize("loaded", [False, True], ids=["imported only there", "also at the top"])
def test_a_local_module_imported_in_the_task_body_is_part_of_its_code(project, loaded):
    tasks(project, ("import helpers as _preloaded\n" if loaded else "") + textwrap.dedent("""
        @task(inputs=["src/*.txt"])
        def build():
            import helpers
            ran("build" + helpers.suffix())
    """))
    project.write("helpers.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("helpers.py", "def suffix():\n    return '!'\n"))
    assert n == 2


@pytest.mark.parametrize("loaded", [False, True], ids=["imported only there", "also at the top"])
def test_a_function_imported_from_a_local_module_in_the_task_body_is_part_of_its_code(
        project, loaded):
    tasks(project, ("import helpers as _preloaded\n" if loaded else "") + textwrap.dedent("""
        @task(inputs=["src/*.txt"])
        def build():
            from helpers import transform
            ran(transform("build"))
    """))
    project.write("helpers.py", "def transform(s):\n    return s\n")
    n = rerun_after(project, lambda: project.write(
        "helpers.py", "def transform(s):\n    return s.upper().lower()\n"))
    assert n == 2


def test_a_module_that_a_body_imported_module_imports_is_part_of_its_code(project):
    tasks(project, """
        @task(inputs=["src/*.txt"])
        def build():
            import helpers
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "from wording import word\n\ndef suffix():\n    return word()\n")
    project.write("wording.py", "def word():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("wording.py", "def word():\n    return '-2'\n"))
    assert n == 2


@pytest.mark.parametrize("statement, call", [
    ("from tools import naming", "naming.suffix()"),
    ("import tools.naming", "tools.naming.suffix()"),
    ("from tools.naming import suffix", "suffix()"),
], ids=["from package import module", "import package.module", "from package.module import"])
def test_a_submodule_imported_in_the_task_body_is_part_of_its_code(project, statement, call):
    tasks(project, f"""
        @task(inputs=["src/*.txt"])
        def build():
            {statement}
            ran("build" + {call})
    """)
    project.write("tools/__init__.py", "")
    project.write("tools/naming.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("tools/naming.py",
                                                   "def suffix():\n    return '-2'\n"))
    assert n == 2


def test_a_relative_import_in_a_function_of_a_local_package_is_followed(project):
    tasks(project, """
        from tools.steps import label

        @task(inputs=["src/*.txt"])
        def build():
            ran(label())
    """)
    project.write("tools/__init__.py", "")
    project.write("tools/steps.py",
                  "def label():\n    from .naming import suffix\n    return 'build' + suffix()\n")
    project.write("tools/naming.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("tools/naming.py",
                                                   "def suffix():\n    return '-2'\n"))
    assert n == 2


def test_a_module_imported_inside_a_function_of_a_used_module_is_part_of_its_code(project):
    tasks(project, """
        import helpers

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "def suffix():\n    import wording\n    return wording.word()\n")
    project.write("wording.py", "def word():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("wording.py", "def word():\n    return '-2'\n"))
    assert n == 2


def test_a_constant_that_a_used_module_takes_from_another_local_module_is_seen(project):
    tasks(project, """
        import helpers

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "from settings import SUFFIX\n\ndef suffix():\n    return SUFFIX\n")
    project.write("settings.py", "SUFFIX = ''\n")
    n = rerun_after(project, lambda: project.write("settings.py", "SUFFIX = '-2'\n"))
    assert n == 2


def test_an_unrelated_local_module_is_not_part_of_the_code(project):
    tasks(project, """
        @task(inputs=["src/*.txt"])
        def build():
            import helpers
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "def suffix():\n    return ''\n")
    project.write("unrelated.py", "X = 1\n")
    assert rerun_after(project, lambda: project.write("unrelated.py", "X = 2\n")) == 1


# ---------------------------------------------------------------- constants

CONSTANTS = """
    import dataclasses
    import enum


    class Mode(enum.Enum):
        FAST = 1
        SLOW = 2


    @dataclasses.dataclass(frozen=True)
    class Options:
        level: int


    MODE = Mode.FAST
    OPTIONS = Options(level=1)
    TAGS = frozenset({"a", "b"})
    TABLE = {"k": [1, 2, (3, None)]}
    NOTHING = None


    @task(inputs=["src/*.txt"])
    def build():
        ran("build")
        str((MODE, OPTIONS, TAGS, TABLE, NOTHING))
"""


@pytest.mark.parametrize("old, new", [
    ("MODE = Mode.FAST", "MODE = Mode.SLOW"),
    ("OPTIONS = Options(level=1)", "OPTIONS = Options(level=2)"),
    ('TAGS = frozenset({"a", "b"})', 'TAGS = frozenset({"a", "c"})'),
    ("(3, None)", "(3, 4)"),
    ("NOTHING = None", "NOTHING = 0"),
], ids=["an enum member", "a dataclass value", "a frozenset", "a nested dict", "None"])
def test_a_constant_the_task_reads_counts_by_value(project, old, new):
    tasks(project, CONSTANTS)
    assert rerun_after(project, lambda: edit_tasksfile(project, old, new)) == 2


# ---------------------------------------------------------------- classes

CLASSES = """
    class Base:
        GREETING = "hi"

        def shout(self, text):
            return text.upper()


    class Settings(Base):
        \"\"\"What the build uses.\"\"\"
        REPEAT = 1
        NAMES = ("a", "b")

        @staticmethod
        def sep():
            return "-"

        @classmethod
        def times(cls):
            return cls.REPEAT * 1

        @property
        def title(self):
            return "t"


    @task(inputs=["src/*.txt"])
    def build():
        ran("build")
        (ROOT / "out.txt").write_text(
            Settings.sep().join(Settings.NAMES) * Settings.times() + Settings.GREETING
            + Settings().shout("x") + Settings().title)
"""


@pytest.mark.parametrize("old, new", [
    ("REPEAT = 1", "REPEAT = 2"),
    ('NAMES = ("a", "b")', 'NAMES = ("a", "c")'),
    ('return "-"', 'return "+"'),
    ("return cls.REPEAT * 1", "return cls.REPEAT * 2"),
    ('return "t"', 'return "T"'),
    ('GREETING = "hi"', 'GREETING = "ho"'),
    ("return text.upper()", "return text.lower()"),
], ids=["a class constant", "a tuple class constant", "a static method",
        "a class method", "a property",
        "a constant of a local base class", "a method of a local base class"])
def test_a_class_attribute_the_task_reads_is_part_of_its_code(project, old, new):
    tasks(project, CLASSES)
    assert rerun_after(project, lambda: edit_tasksfile(project, old, new)) == 2


def test_a_class_docstring_is_not_code(project):
    tasks(project, CLASSES)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, '"""What the build uses."""', '"""What the build uses, said again."""')) == 1


def test_an_object_of_a_local_class_brings_its_class_code(project):
    tasks(project, """
        class Renderer:
            def render(self, text):
                return text

        RENDERER = Renderer()

        @task(inputs=["src/*.txt"])
        def build():
            ran(RENDERER.render("build"))
    """)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, "return text\n", "return text + ''\n")) == 2


# ---------------------------------------------------------------- functions held in constants

def test_a_function_in_a_dict_constant_is_part_of_the_code(project):
    tasks(project, """
        def upper(s):
            return s.upper()

        HANDLERS = {"x": upper}

        @task(inputs=["src/*.txt"])
        def build():
            ran("build")
            (ROOT / "out.txt").write_text(HANDLERS["x"]("a"))
    """)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, "return s.upper()", "return s.lower()")) == 2


@pytest.mark.parametrize("constant", [
    "PIPELINE = [(strip, [upper])]",
    "PIPELINE = ({'steps': (strip, upper)},)",
    "PIPELINE = frozenset({strip, upper})",
], ids=["lists and tuples", "a dict in a tuple", "a frozenset"])
def test_a_function_in_a_nested_constant_is_part_of_the_code(project, constant):
    tasks(project, f"""
        def strip(s):
            return s.strip()

        def upper(s):
            return s.upper()

        {constant}

        @task(inputs=["src/*.txt"])
        def build():
            ran("build")
            str(PIPELINE)
    """)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, "return s.upper()", "return s.lower()")) == 2


@pytest.mark.parametrize("steps, old, new", [
    ("Shouter().shout", "return self.PREFIX + s.upper()", "return self.PREFIX + s.lower()"),
    ("Shouter().shout", "PREFIX = '>'", "PREFIX = '#'"),
    ("Shouter.tag", "return cls.PREFIX + s", "return cls.PREFIX + s + s"),
    ("Shouter.tag", "PREFIX = '>'", "PREFIX = '#'"),
], ids=["a method's code", "a constant of a method's class", "a class method's code",
        "a constant of a class method's class"])
def test_a_bound_method_in_a_constant_is_part_of_the_code(project, steps, old, new):
    tasks(project, f"""
        class Shouter:
            PREFIX = '>'

            def shout(self, s):
                return self.PREFIX + s.upper()

            @classmethod
            def tag(cls, s):
                return cls.PREFIX + s

        STEPS = ({steps},)

        @task(inputs=["src/*.txt"])
        def build():
            ran("build")
            [step("a") for step in STEPS]
    """)
    assert rerun_after(project, lambda: edit_tasksfile(project, old, new)) == 2


def test_a_function_given_as_a_default_argument_is_part_of_the_code(project):
    tasks(project, """
        def upper(s):
            return s.upper()

        def render(text, how=upper):
            return how(text)

        @task(inputs=["src/*.txt"])
        def build():
            ran("build")
            render("a")
    """)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, "return s.upper()", "return s.lower()")) == 2


def test_a_value_the_task_function_closes_over_is_part_of_the_code(project):
    tasks(project, """
        def make(suffix):
            @task(name="build", inputs=["src/*.txt"])
            def build():
                ran("build" + suffix)
            return build

        make("")
    """)
    assert rerun_after(project, lambda: edit_tasksfile(project, 'make("")', 'make("-2")')) == 2


def test_a_partial_of_a_local_function_is_part_of_the_code(project):
    tasks(project, """
        import functools

        def label(name, suffix):
            return name + suffix

        LABEL = functools.partial(label, suffix="")

        @task(inputs=["src/*.txt"])
        def build():
            ran(LABEL("build"))
    """)
    assert rerun_after(project, lambda: edit_tasksfile(
        project, "return name + suffix", "return name + suffix + ''")) == 2


# ---------------------------------------------------------------- installed code

@pytest.mark.parametrize("parent", ["site-packages", "dist-packages", "lib/python3/site-packages"])
def test_a_project_whose_path_names_site_packages_still_tracks_its_modules(tmp_path, parent):
    project = Project(tmp_path / parent / "proj")
    tasks(project, """
        import helpers

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write("helpers.py",
                                                   "def suffix():\n    return '-2'\n"))
    assert n == 2


VENDORED = """
    import sys
    sys.path.insert(0, str(ROOT / "{where}"))
    import vendored

    @task(inputs=["src/*.txt"])
    def build():
        ran("build" + vendored.suffix())
"""


@pytest.mark.parametrize("marker", [".venv/pyvenv.cfg", ".venv/conda-meta/history"],
                         ids=["a virtual environment", "a conda environment"])
def test_an_environment_inside_the_project_is_installed_code(project, marker):
    """Code installed in a virtual environment (a directory with pyvenv.cfg) or a conda
    environment counts by name, even when the environment lies inside the project:
    upgrading a tool is not a change of the task."""
    where = ".venv/lib/python3/site-packages"
    project.write(marker, "home = /usr/bin\n")
    tasks(project, VENDORED.replace("{where}", where))
    project.write(f"{where}/vendored.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write(f"{where}/vendored.py",
                                                   "def suffix():\n    return '' + ''\n"))
    assert n == 1


def test_a_vendored_directory_without_an_environment_is_the_projects_code(project):
    where = "vendor/site-packages"
    tasks(project, VENDORED.replace("{where}", where))
    project.write(f"{where}/vendored.py", "def suffix():\n    return ''\n")
    n = rerun_after(project, lambda: project.write(f"{where}/vendored.py",
                                                   "def suffix():\n    return '-2'\n"))
    assert n == 2


# ---------------------------------------------------------------- no needless runs

EVERYTHING = """
    import functools
    import json
    from pathlib import Path as P

    import helpers
    from helpers import suffix


    class Base:
        LEVEL = 3


    class Settings(Base):
        NAMES = frozenset({"a", "b", "c", "d", "e"})
        TYPES = (int, str)

        def method(self):
            return sorted(self.NAMES)


    def upper(s):
        return s.upper()


    def lower(s):
        return s.lower()


    HANDLERS = {"u": upper, "l": lower, "both": [upper, lower]}
    FUNCTIONS = {upper, lower, helpers.suffix, json.dumps, len}
    CLASSES = {Base, Settings, int, P}
    OBJECT = Settings()
    PARTIAL = functools.partial(upper, "x")
    WHERE = P("src") / "a.txt"


    @task(inputs=["src/*.txt"])
    def build():
        import wording
        from tools import naming
        ran("build" + suffix() + wording.word() + naming.suffix())
        json.dumps([sorted(Settings.NAMES), Settings.TYPES[0](Base.LEVEL), OBJECT.method(),
                    str(HANDLERS), len(FUNCTIONS), len(CLASSES), PARTIAL(), str(WHERE)])
"""


def everything_project(project) -> None:
    tasks(project, EVERYTHING)
    project.write("helpers.py", "import wording\n\ndef suffix():\n    return ''\n")
    project.write("wording.py", "def word():\n    return ''\n")
    project.write("tools/__init__.py", "")
    project.write("tools/naming.py", "def suffix():\n    return ''\n")
    project.write("src/a.txt", "a\n")


def test_an_unchanged_project_stays_up_to_date(project):
    everything_project(project)
    for _ in range(3):
        ok(project, "build")
    assert runs(project, "build") == 1


def test_the_code_digest_is_the_same_in_every_process(project):
    """No addresses, ids or set orders in the digest: the same under other hash seeds
    (string sets), and across processes whose objects lie elsewhere (sets of
    functions and classes are ordered by address)."""
    everything_project(project)
    hashes = set()
    for seed in ("0", "1", "2", "3", "random"):
        r = ok(project, "hash", "build", env=clean_env(PYTHONHASHSEED=seed))
        assert HEX64.match(r.out), r.out
        hashes.add(r.out)
    assert len(hashes) == 1


def test_every_kind_of_reference_is_still_seen(project):
    everything_project(project)
    first = ok(project, "hash", "build").out
    project.write("tools/naming.py", "def suffix():\n    return '-2'\n")
    assert ok(project, "hash", "build").out != first


def test_a_tasks_code_digest_does_not_depend_on_the_other_tasks_of_the_run(project):
    """Helpers shared by tasks (here two that call each other, and a class) count the
    same in a run of one task as in a run of several, whichever comes first."""
    tasks(project, """
        class Shared:
            SEP = "-"

        def ping(n):
            return "" if n <= 0 else pong(n - 1)

        def pong(n):
            return Shared.SEP if n <= 0 else ping(n - 1)

        @task(inputs=["src/*.txt"])
        def a():
            ran("a" + ping(1))

        @task(inputs=["src/*.txt"])
        def b():
            ran("b" + pong(1) + Shared.SEP)
    """)
    project.write("src/a.txt", "a\n")
    ok(project, "a", "b")
    for targets in (["b"], ["a"], ["b", "a"], ["a", "b"]):
        ok(project, *targets)
    assert runs(project) == 2


def test_a_library_module_loaded_by_runner_itself_changes_nothing(project):
    """A task's body imports json; `--log-format json` has runner import it before the
    task's digest is taken. Whether a library module is already loaded is no change
    of the task."""
    tasks(project, """
        @task(inputs=["src/*.txt"])
        def build():
            import json
            ran("build" + json.dumps(""))
    """)
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    ok(project, "--log-format", "json", "build")
    ok(project, "build")
    assert runs(project) == 1


DIGEST_BEFORE_AND_AFTER_IMPORT = """
import importlib, json, sys
from runner.code import CodeDigest
from runner.loader import load_tasks

root = sys.argv[1]
tasks = {t.name: t for t in load_tasks(root + "/tasksfile.py", root)}
before = CodeDigest(root).of_task(tasks["build"]).hex()
loaded_before = "helpers" in sys.modules
importlib.import_module("helpers")  # as the task's first run in `runner watch` does
after = CodeDigest(root).of_task(tasks["build"]).hex()
json.dump([loaded_before, before, after], sys.stdout)
"""


def test_a_module_imported_in_a_body_counts_the_same_loaded_or_not(project):
    """`runner watch` builds in one process: after the first build, the modules task
    bodies import are loaded. That is no change of any task."""
    import json
    import subprocess
    import sys

    tasks(project, """
        @task(inputs=["src/*.txt"])
        def build():
            from helpers import transform
            ran(transform("build"))
    """)
    project.write("helpers.py", "from wording import WORD\n\n"
                                "def transform(s):\n    return s + WORD\n")
    project.write("wording.py", "WORD = ''\n")
    out = subprocess.run([sys.executable, "-c", DIGEST_BEFORE_AND_AFTER_IMPORT,
                          str(project.root)], capture_output=True, text=True, env=clean_env(),
                         check=True).stdout
    loaded_before, before, after = json.loads(out)
    assert not loaded_before
    assert before == after


def test_the_opcode_numbers_runner_knows_are_pythons():
    """runner.modules reads imports from bytecode with the opcode numbers of the
    running Python, kept in a table (importing `opcode` costs more than the scan)."""
    import opcode

    from runner import modules

    table = modules.import_opcodes()
    assert table.import_name == opcode.opmap["IMPORT_NAME"]
    assert table.load_const == opcode.opmap["LOAD_CONST"]
    assert table.extended_arg == opcode.opmap["EXTENDED_ARG"]
    assert table.cache == opcode.opmap.get("CACHE")
    assert table.load_small_int == opcode.opmap.get("LOAD_SMALL_INT")


def test_the_projects_own_files_are_told_from_installed_ones(tmp_path):
    """In-process: the decision for files of the project, of a virtual environment in
    it, of the standard library and of the interpreter's site-packages."""
    import json

    from runner.code import CodeDigest

    root = tmp_path / "site-packages" / "dist-packages" / "proj"
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    digest = CodeDigest(str(root))
    assert digest.local(str(root / "tasksfile.py"))
    assert digest.local(str(root / "src" / "site-packages" / "x.py"))
    assert not digest.local(str(root / ".venv" / "lib" / "x.py"))
    assert not digest.local(json.__file__)
    assert not digest.local(str(Path(pytest.__file__)))
    assert not digest.local(str(tmp_path / "elsewhere.py"))


def test_a_project_inside_the_interpreters_prefix_still_has_its_own_code(tmp_path):
    """A project below sys.prefix (a checkout in /usr/src, or a virtual environment
    made in the project's own directory) is still the project's code; the
    environment's site-packages is not."""
    import sys

    from runner.code import CodeDigest

    digest = CodeDigest(sys.prefix)
    assert digest.local(os.path.join(sys.prefix, "tasksfile.py"))
    site = next(p for p in sys.path if p.startswith(sys.prefix) and p.endswith("-packages"))
    assert not digest.local(os.path.join(site, "x.py"))

