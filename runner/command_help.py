"""The `--help` of each built-in command: what `runner graph --help` and the others
print (and all they do)."""

from __future__ import annotations

COMMAND_HELP = {
    "graph": """\
usage: runner graph [TASK...] [--format tree|mermaid|dot|json|html] [--output PATH]

Show the task graph: every task, or the TASKs and what they depend on.

options:
  --format FORMAT   tree (default), mermaid, dot, json, or html (a self-contained page
                    with an inline SVG, coloured by the last run)
  --output PATH     write it to PATH instead of standard output
""",
    "hash": """\
usage: runner hash TASK [TASK-OPTIONS] [TASK [TASK-OPTIONS]]...

Print the fingerprint (cache key) of each TASK, as a run with these options would
compute it: what CI uses as its cache key. Nothing runs and nothing is written.
""",
    "watch": """\
usage: runner watch TASK [TASK-OPTIONS] [--run 'CMD'] [--restart-build] [--restart-on-exit]
                    [--clear]

Run TASK, then run it again whenever a file its inputs (or its deps' inputs) match
changes. A task marked service=True, or the command given with --run, is (re)started
after each successful build. Ctrl-C stops everything and exits 130.

options:
  --run 'CMD'          a long-running command to restart after each good build
  --restart-build      a change during a build cancels it and builds again at once
  --restart-on-exit    restart the server when it exits by itself
  --clear              clear the screen before each build
""",
    "history": """\
usage: runner history [--task TASK] [--limit N] [--json]

The most recent runs, newest first; with --task, one task's outcomes and durations.

options:
  --task TASK   one task's history
  --limit N     how many runs (default 20)
  --json        as JSON
""",
    "init": """\
usage: runner init

Write a starter tasksfile.py for the project in this directory (its tests, its linter
and type checker, as pyproject.toml and the files here show them) and add .runner/ to
.gitignore. An existing tasksfile.py is left alone.
""",
    "ci": """\
usage: runner ci github [TASK...] [--output PATH] [--check]

Generate CI configuration from the task graph (`runner ci github --help`).
""",
    "ci github": """\
usage: runner ci github [TASK...] [--output PATH] [--check]

Write the GitHub Actions workflow that runs these TASKs (default: the tasks with ci=
or schedule=, else the default task), one job per task.

options:
  --output PATH   where to write it (default: .github/workflows/runner.yml)
  --check         write nothing; exit 1 with a diff if the file on disk is stale
""",
    "cache": """\
usage: runner cache info|clean|prune [OPTIONS]

  info     the cache's size, entries and hit rate (--json for machines)
  clean    delete every cache entry and stored output (the run history stays)
  prune    delete the least recently used entries: --max-size SIZE, --older-than AGE

`runner cache COMMAND --help` for each.
""",
    "cache info": """\
usage: runner cache info [--json]

The cache's size on disk, its entries and the hit rate of the last runs.
""",
    "cache clean": """\
usage: runner cache clean

Delete every cache entry, stored output and task record, so that every task runs
again. The run history (`runner history`) is kept. Waits for no one: it refuses while
another runner works in the project.
""",
    "cache prune": """\
usage: runner cache prune [--max-size SIZE] [--older-than AGE]

Delete whole cache entries, least recently used first, until the stored outputs fit
in SIZE (500M, 1G, 2048) and none is unused for longer than AGE (30d, 12h, 90m, 2w);
then the stored outputs no entry uses. A task whose entry is gone runs again.
""",
}
