"""The report at the end of an audited run (--audit): per task, what it did that it
does not declare, with what to add; then what was not audited, and why."""

from __future__ import annotations

from . import events as ev

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .audit import Audit
    from .executor import Outcome


def not_audited(audit: Audit, outcome: Outcome) -> dict[str, str]:
    """The tasks of the run that were not judged, with why."""
    why: dict[str, str] = {}
    judged = audit.judged(outcome.order)
    for name in outcome.order:
        r = outcome.results.get(name)
        if name in judged:
            continue
        if name in audit.findings:
            why[name] = "not cached: it always runs, so nothing it reads can go stale"
        elif r is not None and r.status in (ev.CACHED, ev.RESTORED):
            why[name] = "up to date, so it did not run (-B runs it)"
        else:
            why[name] = "did not run"
    return why


def report_text(audit: Audit, outcome: Outcome) -> str:
    """The audit's part of a run's output (text): the findings by task, what was not
    audited, and in strict mode what that means for the run."""
    found = {n: f for n, f in audit.findings.items() if f}
    total = sum(len(f) for f in found.values())
    judged = audit.judged(outcome.order)
    lines = [""]
    if total:
        lines.append(
            f"audit ({audit.mode}): {total} finding{'s' * (total != 1)} in "
            f"{len(found)} of {len(judged)} task{'s' * (len(judged) != 1)} audited"
        )
    else:
        shown = ", ".join(judged)
        lines.append(
            f"audit ({audit.mode}): nothing undeclared"
            + (f" in {shown}" if judged else ": no cached task ran")
        )
    for name in judged if total else ():  # one report per task
        lines += [f"  {name}: {f.sentence()}" for f in found.get(name, ())]
        if name not in found:
            lines.append(f"  {name}: nothing undeclared")
    skipped = not_audited(audit, outcome)
    if skipped:
        lines.append("not audited:")
        lines += [f"  {n}: {why}" for n, why in skipped.items()]
    if audit.untraced is not None:
        lines.append(f"commands were not audited: {audit.untraced}")
    if audit.mode == "strict" and total:
        names = ", ".join(n for n in judged if n in found)
        lines.append(f"audit failed (--audit=strict): nothing was cached for {names}; exit 1")
    return "\n".join(lines) + "\n"
