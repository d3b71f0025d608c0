"""Whether a task must run, and why: the one place the executor and `-n` ask."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .graph import Graph

RUN = "run"
SKIP = "skip"          # up to date, outputs in place
RESTORE = "restore"    # up to date, outputs restored from the cache


class Decision:
    """What to do with a task, with the reasons `-n` and `-v` print."""

    __slots__ = ("action", "reasons")

    def __init__(self, action: str, reasons: list[str]) -> None:
        self.action = action
        self.reasons = reasons

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def __repr__(self) -> str:
        return f"Decision({self.action!r}, {self.reasons!r})"


class Planner:
    """Decides, for each task when its deps are done, whether it runs."""

    def __init__(self, graph: Graph, *, force: bool = False) -> None:
        self.graph = graph
        self.force = force

    def decide(self, name: str, args: dict[str, Any], deps_ran: dict[str, bool]) -> Decision:
        task = self.graph.tasks[name]
        if self.force:
            return Decision(RUN, ["forced"])
        if task.service:
            return Decision(RUN, ["service task: never cached"])
        if not task.cache:
            return Decision(RUN, ["not cached (no inputs declared)" if not task.inputs
                                  else "caching is off for this task"])
        ran = [d for d, r in deps_ran.items() if r]
        if ran:
            return Decision(RUN, [f"dep {d} ran" for d in ran])
        return Decision(RUN, ["never ran"])

    def record(self, name: str, args: dict[str, Any], duration: float) -> None:
        """A task succeeded: remember it (nothing to remember without a cache)."""

    def close(self) -> None:
        pass
