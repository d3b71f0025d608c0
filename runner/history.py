"""The run history: every run and each task's outcome go into the state store."""

from __future__ import annotations

import time

from . import events as ev

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import Store


class HistoryRecorder:
    """Listens to a run's events and writes the run to the store when it ends."""

    def __init__(self, store: Store, targets: list[str]) -> None:
        self.store = store
        self.targets = targets
        self.started = time.time()
        self.tasks: list[tuple[str, str, float]] = []
        self.saved = 0.0

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskFinished):
            self.tasks.append((e.task, e.status, e.duration))
            self.saved += e.saved or 0.0
        elif isinstance(e, ev.RunFinished):
            self.store.add_run(
                e.run_id,
                self.started,
                time.time(),
                e.status,
                e.counts,
                self.saved,
                self.targets,
                self.tasks,
            )
