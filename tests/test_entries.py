"""SPEC §4, entries are untrusted input: the one rule every restore applies
(runner.entries.refusal), clause by clause, on a real project directory. The
black-box tests (test_store, test_remote_cache) show it applied to local and remote
entries; this table shows what it accepts and refuses."""

from __future__ import annotations

import os
import stat

import pytest

from runner.entries import DIRECTORY, FILE, Output, from_json, refusal, to_json

D = bytes(range(32))
PATTERNS = ["out/**", "dist/*.whl", "build"]


def file(path: str, mode: int = 0o644) -> Output:
    return Output(path, D, FILE | mode, 3)


@pytest.fixture
def root(tmp_path):
    """The project; tmp_path/outside is beside it."""
    (tmp_path / "project" / "out").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "project" / "out" / ".."  # spelled with `..`: it must not confuse


ACCEPTED = {
    "a file the patterns match": [file("out/a.txt")],
    "a file deep below a `**` pattern": [file("out/x/y/z.bin")],
    "everything below a literal directory": [file("build/lib/m.py")],
    "an executable": [file("dist/app.whl", 0o755)],
    "a symlink to a sibling": [Output.symlink("out/latest", "a.txt")],
    "a symlink to nothing (yet)": [Output.symlink("out/pending", "later.txt")],
    "a symlink up and back into the project": [Output.symlink("out/src", "../build")],
    "an empty directory": [Output.directory("build", 0o755)],
}


@pytest.mark.parametrize("outputs", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_an_entry_of_declared_outputs_is_accepted(root, outputs):
    assert refusal(outputs, PATTERNS, str(root), [".runner"]) is None


REFUSED = {
    "a path climbing out": ([file("out/../../x")], "leaves the project"),
    "a path starting with ..": ([file("../x")], "leaves the project"),
    "an absolute path": ([file("/etc/cron.d/x")], "absolute"),
    "a path with //": ([file("out//a.txt")], "not normalised"),
    "a path with /./": ([file("out/./a.txt")], "not normalised"),
    "a path ending in /": ([file("out/a/")], "not normalised"),
    "an empty path": ([file("")], "empty"),
    "a git hook": ([file(".git/hooks/pre-commit")], "inside .git"),
    "a __pycache__ file": ([file("out/__pycache__/m.pyc")], "inside __pycache__"),
    "the cache directory": ([file(".runner/state.db")], "cache directory"),
    "the tasksfile": ([file("tasksfile.py")], "not one of the task's outputs"),
    "a near miss of a pattern": ([file("dist/app.tar.gz")], "not one of the task's outputs"),
    "a setuid file": ([file("out/a", 0o4755)], "more than permission bits"),
    "a setgid file": ([file("out/a", 0o2755)], "more than permission bits"),
    "a sticky directory": ([Output("build", bytes(32), DIRECTORY | 0o1777, 0)],
                           "more than permission bits"),
    "a device": ([Output("out/dev", D, stat.S_IFCHR | 0o666, 0)], "neither a file"),
    "a path twice": ([file("out/a"), file("out/a")], "twice"),
    "an output below another": ([file("out/a"), file("out/a/b")], "parent of another"),
    "a symlink to an absolute path": ([Output.symlink("out/l", "/etc/passwd")],
                                      "leaves the project"),
    "a symlink climbing out": ([Output.symlink("out/l", "../../x")], "leaves the project"),
    "a symlink into .git": ([Output.symlink("out/l", "../.git/config")], "inside .git"),
    "a symlink into the cache": ([Output.symlink("out/l", "../.runner/state.db")],
                                 "cache directory"),
}


@pytest.mark.parametrize(("outputs", "why"), REFUSED.values(), ids=REFUSED.keys())
def test_an_entry_breaking_the_rule_is_refused_saying_which_output(root, outputs, why):
    said = refusal(outputs, PATTERNS, str(root), [".runner"])
    assert said is not None and why in said, said
    assert repr(outputs[-1].path) in said or repr(outputs[0].path) in said


def test_a_path_reached_through_a_symlinked_directory_is_refused(root):
    os.symlink(root / ".." / "outside", root / "out" / "sub")
    said = refusal([file("out/sub/x.txt")], PATTERNS, str(root))
    assert said is not None and "symbolic link (out/sub)" in said


def test_a_symlink_resolving_outside_through_an_existing_link_is_refused(root):
    os.symlink(root / ".." / "outside", root / "out" / "away")
    said = refusal([Output.symlink("out/l", "away/file")], PATTERNS, str(root))
    assert said is not None and "resolves outside the project" in said


def test_the_remote_form_keeps_files_symlinks_and_directories():
    outputs = [file("out/a.txt", 0o755), Output.symlink("out/l", "a.txt"),
               Output.directory("build", 0o700)]
    back = from_json(to_json(outputs))
    assert [o.row() for o in back] == [o.row() for o in outputs]
    assert back[2].kind == DIRECTORY
