"""What `runner ci github` makes of each kind of task, in one small project:

    runner ci github     write .github/workflows/runner.yml
    runner --list        the tasks

`check` runs once per part (a matrix over its option), `weekly` on its schedule, and
`broken` fails on purpose: its job goes red, with the error annotated, and so does the
`all-green` gate. (tests/test_ci_actions.py runs this workflow in a real Actions runner.)
"""

from pathlib import Path

from runner import TaskError, task


@task(inputs=["src/*.txt"], ci={"matrix": {"part": ["a", "b"]}})
def check(part: str = "a"):
    """Count the words of one part."""
    words = Path(f"src/{part}.txt").read_text().split()
    print(f"checking part {part}: {len(words)} words")


@task(inputs=["src/*.txt"], schedule="0 4 * * 1")
def weekly():
    """A report of every part, on Monday mornings."""
    for path in sorted(Path("src").glob("*.txt")):
        print(f"weekly: {path.name} has {len(path.read_text().split())} words")


@task(ci=True)
def broken():
    """Fails on purpose."""
    raise TaskError("this task fails on purpose")
