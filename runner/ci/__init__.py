"""Continuous integration: `runner ci github` writes a GitHub Actions workflow from the task
graph (`github`, with `settings` reading the tasks' `ci=` and `[tool.runner.github]`, and
`yaml` writing the text), and a run inside GitHub Actions reports through groups,
annotations and the job summary (`report`). None is imported unless one of those is used."""
