"""Continuous integration: `runner ci github` writes a GitHub Actions workflow from the task
graph (`github`), and a run inside GitHub Actions reports through groups, annotations and
the job summary (`report`). Neither is imported unless one of those is used."""
