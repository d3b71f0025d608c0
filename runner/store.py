"""Everything runner keeps, under the cache directory (`.runner/`):

    state.db     SQLite in WAL mode: the last record of each task (its fingerprint's
                 parts and the stat cache of its files), the cache entries (fingerprint
                 -> the outputs that run produced) and the history of runs
    cas/ab/...   the content-addressed store of outputs (runner.cas)
    tmp/         temporary files, named PID-XXXX: blobs being copied in, outputs
                 staged for a restore (runner.restore)
    locks        one byte per task, so that two runners never run the same task at
                 once, and one per runner (runner.locks)

A commit in WAL mode is atomic, so a runner killed at any instant leaves the previous
state or the next one (the database is not fsynced: after a power loss the last
commits may be lost, which costs re-runs, never a false hit). A store damaged some
other way (garbage over its files) is detected when it is opened or read — SQLite's
own checks, plus a checksum on each record — moved aside as state.db.damaged-N, and
rebuilt empty; the run goes on. So is damage to the layout of the directory (a file
where cas/ or tmp/ belongs: runner.layout).

A runner killed while it copied a blob in or staged a restore leaves a file in tmp/
(never beside the outputs). Each runner holds the lock byte of its pid while it works
(runner.locks); opening the store clears the temporary files of the pids whose byte
is free, so a live runner's are never taken from it.
"""

from __future__ import annotations

import _thread
import marshal
import os
import time

try:
    # The C module alone: the `sqlite3` package adds only adapters for dates, which
    # runner never stores, and imports datetime for them (~2 ms of a no-op run).
    import _sqlite3 as sqlite3
except ImportError:  # pragma: no cover - an interpreter without the split
    import sqlite3  # type: ignore[no-redef]

from . import layout
from .cas import STAGING_NOTE, Blobs, remove_file
from .entries import blobs_of
from .errors import StoreError
from .fingerprint import digest
from .locks import TaskLocks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

SCHEMA_VERSION = 2
# Made on first use in a store that predates it (no new schema version: an older
# runner ignores the table).
SNAPSHOTS = """
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY, created REAL NOT NULL, data BLOB NOT NULL);
"""
# The runs made with --audit (runner.audit), made on first use like snapshots.
AUDITS = """
CREATE TABLE IF NOT EXISTS audits (
    run_id TEXT PRIMARY KEY, mode TEXT NOT NULL, findings INTEGER NOT NULL);
"""
KEEP_RUNS = 1000  # the history keeps this many runs
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (task TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key BLOB PRIMARY KEY, task TEXT NOT NULL, manifest BLOB NOT NULL,
    size INTEGER NOT NULL, duration REAL NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (last_used);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL, status TEXT,
    ran INTEGER, hits INTEGER, restored INTEGER, failed INTEGER, saved REAL,
    targets TEXT, outcomes BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started);
"""
    + SNAPSHOTS
    + AUDITS
)
KEEP_SNAPSHOTS = 8  # the snapshots of the targets run most recently (runner.snapshot)
# A run's task outcomes are one sealed list [(task, status, duration)] in its row, not a
# row each: a no-op run of 1,000 tasks writes one row.


class Store:
    """The state database, the blob store and the task locks of one project."""

    def __init__(
        self, cache_dir: str, *, readonly: bool = False, warn: Callable[[str], None] | None = None
    ) -> None:
        self.dir = cache_dir
        self.readonly = readonly
        self.warn = warn or (lambda msg: None)
        self.db_path = os.path.join(cache_dir, "state.db")
        self._db: sqlite3.Connection | None = None
        self.locks = TaskLocks(cache_dir, self.warn)  # one task at a time across runners
        self.blobs = Blobs(cache_dir, self.warn)  # the content-addressed store of outputs
        self._mutex = _thread.allocate_lock()

    # ------------------------------------------------------------ opening, damage
    @property
    def db(self) -> sqlite3.Connection | None:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection | None:
        if self.readonly:
            if not os.path.exists(self.db_path):
                return None
            # A read-only connection to a WAL database creates its -wal and -shm files
            # when they are missing; `immutable` creates nothing. They are there only
            # while a writer has it open (or after one was killed): then read through
            # them, to see its commits.
            live = os.path.exists(self.db_path + "-wal")
            mode = "mode=ro" if live else "immutable=1"
            try:
                db = sqlite3.connect(
                    f"file:{self.db_path}?{mode}", uri=True, check_same_thread=False, timeout=10
                )
                db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                return db
            except sqlite3.DatabaseError:
                return None  # damaged or mid-creation: a dry run reads nothing
        try:
            layout.ensure_directory(self.dir, "tmp", self.warn)
            layout.ensure_directory(self.dir, "cas", self.warn)
            _ignore_in_git(self.dir)
        except OSError as e:
            raise StoreError(f"cannot create {self.dir}: {e.strerror}") from None
        # This runner is alive (before it makes a temporary file); those of runners
        # that are not go.
        self.locks.hold_pid()
        self.clear_temporaries()
        moved = False
        deadline = time.monotonic() + 30
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as e:
                if _io_trouble(e):  # a full disk, an I/O error: the file is not at fault
                    raise StoreError(f"{self.db_path}: {_io_message(e, self.dir)}") from None
                if _busy(e):
                    # Another runner is creating or changing it (switching to WAL does
                    # not wait on the busy timeout): wait for our turn.
                    if time.monotonic() > deadline:
                        raise StoreError(f"{self.db_path}: {e}") from None
                    time.sleep(0.05)
                    continue
                if moved:
                    raise StoreError(f"{self.db_path}: {e}") from None
                self._move_aside(str(e))
                moved = True
            except sqlite3.DatabaseError as e:
                if moved:
                    raise StoreError(f"{self.db_path}: {e}") from None
                self._move_aside(str(e))
                moved = True

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.db_path, check_same_thread=False, timeout=30, isolation_level=None
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + synchronous=OFF: a killed runner never corrupts the database (a
            # commit is atomic in the WAL); only a power loss can lose the last commits
            # or damage pages, which the checksums catch (then it is rebuilt). NORMAL
            # would fsync on every run's first commit and at close: 4 ms of a 30 ms
            # no-op run.
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cell_size_check=ON")
            row = None
            try:
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            except sqlite3.OperationalError as e:
                if "no such table" not in str(e):
                    raise
            if row is None:
                db.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif row[0] != str(SCHEMA_VERSION):
                db.close()
                # From another version of runner: not damage, but not readable either.
                raise sqlite3.DatabaseError(f"schema version {row[0]}, expected {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> None:
        """Keep the damaged database for inspection and start a new one."""
        n = 1
        while os.path.exists(f"{self.db_path}.damaged-{n}"):
            n += 1
        aside = f"{self.db_path}.damaged-{n}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.db_path + suffix):
                os.replace(self.db_path + suffix, aside + suffix)
        what = (
            "is from another version of runner"
            if why.startswith("schema version")
            else f"was damaged ({why})"
        )
        self.warn(
            f"the cache state {self.db_path} {what}; moved it to "
            f"{os.path.basename(aside)} and started a new one"
        )

    def recover(self, error: Exception) -> None:
        """A read hit damage: move the database aside and carry on with a new one."""
        with self._mutex:
            self._recover(error)

    def _recover(self, error: Exception) -> None:
        """recover(), the mutex held."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        if not self.readonly:
            self._move_aside(str(error))

    def _guard(self, fn: Callable[[sqlite3.Connection], Any], default: Any = None) -> Any:
        """Run fn(db); damage is recovered from (the answer is `default`); a full disk
        or a locked database is a StoreError."""
        with self._mutex:
            db = self.db
            if db is None:
                return default
            try:
                try:
                    return fn(db)
                except sqlite3.Error:
                    if db.in_transaction:  # leave no transaction open behind an error
                        try:
                            db.rollback()
                        except sqlite3.Error:
                            pass
                    raise
            except sqlite3.OperationalError as e:
                if _io_trouble(e):
                    raise StoreError(
                        f"cannot write the cache state: {_io_message(e, self.dir)}"
                    ) from None
                if _busy(e):
                    raise StoreError(f"the cache state is locked: {e}") from None
                if "readonly" in str(e) or "read-only" in str(e):
                    raise StoreError(f"cannot write the cache state: {e}") from None
                self._recover(e)
            except sqlite3.DatabaseError as e:
                self._recover(e)
            return default

    def clear_temporaries(self, *, everything: bool = False) -> None:
        """Delete the temporary files of runners that are gone (`everything`: of all,
        for maintenance, which holds the project alone)."""
        tmp = self.blobs.tmp
        try:
            names = os.listdir(tmp)
        except OSError:
            return
        alive: dict[int, bool] = {}
        for name in names:
            head = name.split("-", 1)[0]
            pid = int(head) if head.isdigit() else -1
            if pid == os.getpid():
                continue
            if not everything:
                if pid not in alive:
                    alive[pid] = pid > 0 and self.locks.pid_alive(pid)
                if alive[pid]:
                    continue
            path = os.path.join(tmp, name)
            if name.endswith(STAGING_NOTE):
                from .restore import clear_staging

                clear_staging(path, pid)
            try:
                os.unlink(path)
            except IsADirectoryError:
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass

    def close(self) -> None:
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
            self.locks.close()

    # ------------------------------------------------------------ records
    def records(self, tasks: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The last record of each of these tasks that has one."""
        names = list(tasks)

        def q(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows: list[tuple[str, bytes]] = []
            for i in range(0, len(names), 500):
                part = names[i : i + 500]
                rows += db.execute(
                    f"SELECT task, data FROM records WHERE task IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
            return rows

        out: dict[str, dict[str, Any]] = {}
        for name, data in self._guard(q, []):
            record = _unseal(data)
            if record is None:
                self.recover(sqlite3.DatabaseError(f"record of task {name} fails its checksum"))
                return {}
            out[name] = record
        return out

    def save_record(self, task: str, record: dict[str, Any]) -> None:
        self.save_records({task: record})

    def save_records(self, records: dict[str, dict[str, Any]]) -> None:
        """Write these records in one transaction."""
        rows = [(task, _seal(r)) for task, r in records.items()]
        if not rows:
            return

        def q(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
            db.execute("COMMIT")

        self._guard(q)

    # ------------------------------------------------------------ snapshots
    def snapshot(self, name: str) -> dict[str, Any] | None:
        """The snapshot of a no-op run of these targets (runner.snapshot), if any."""

        def q(db: sqlite3.Connection) -> Any:
            try:
                return db.execute("SELECT data FROM snapshots WHERE name=?", (name,)).fetchone()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return None  # a store from before snapshots
                raise

        row = self._guard(q)
        if row is None:
            return None
        snap = _unseal(row[0])
        if snap is None:
            self.recover(sqlite3.DatabaseError("a snapshot fails its checksum"))
        return snap

    def save_snapshot(self, name: str, snap: dict[str, Any]) -> None:
        """Keep this snapshot, and those of the KEEP_SNAPSHOTS - 1 targets run before."""
        sealed = _seal(snap)

        def q(db: sqlite3.Connection) -> None:
            db.execute(SNAPSHOTS)
            db.execute("BEGIN")
            db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (name, time.time(), sealed)
            )
            db.execute(
                "DELETE FROM snapshots WHERE name NOT IN "
                "(SELECT name FROM snapshots ORDER BY created DESC LIMIT ?)",
                (KEEP_SNAPSHOTS,),
            )
            db.execute("COMMIT")

        self._guard(q)

    # ------------------------------------------------------------ entries
    def entry(self, key: bytes) -> dict[str, Any] | None:
        row = self._guard(
            lambda db: db.execute(
                "SELECT manifest, duration FROM entries WHERE key=?", (key,)
            ).fetchone()
        )
        if row is None:
            return None
        manifest = _unseal(row[0])
        if manifest is None:
            self.recover(sqlite3.DatabaseError("a cache entry fails its checksum"))
            return None
        return {"outputs": manifest["outputs"], "duration": row[1]}

    def put_entry(
        self,
        key: bytes,
        task: str,
        outputs: list[tuple[Any, ...]],
        duration: float,
        record: dict[str, Any] | None = None,
    ) -> None:
        """Record that fingerprint `key` produced `outputs` (rows of runner.entries;
        their blobs must already be in the store), with the task's new record in the
        same transaction."""
        now = time.time()
        size = sum(size for _d, size in blobs_of(outputs))
        data = _seal({"outputs": outputs})
        sealed = _seal(record) if record is not None else None

        def q(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, task, data, size, duration, now, now),
            )
            if sealed is not None:
                db.execute("INSERT OR REPLACE INTO records VALUES (?, ?)", (task, sealed))
            db.execute("COMMIT")

        self._guard(q)

    def touch_entries(self, keys: Iterable[bytes]) -> None:
        """Mark entries as used now (for least-recently-used pruning). The planner
        calls this at most hourly per task, so that a no-op run writes nothing."""
        keys = list(keys)
        if not keys or self.readonly:
            return
        now = time.time()

        def q(db: sqlite3.Connection) -> None:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                db.execute(
                    f"UPDATE entries SET last_used=? WHERE key IN ({','.join('?' * len(part))})",
                    [now, *part],
                )

        self._guard(q)

    # ------------------------------------------------------------ history
    def add_run(
        self,
        run_id: str,
        started: float,
        ended: float,
        status: str,
        counts: dict[str, int],
        saved: float,
        targets: list[str],
        tasks: list[tuple[str, str, float]],
    ) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    started,
                    ended,
                    status,
                    counts.get("ok", 0),
                    counts.get("cached", 0),
                    counts.get("restored", 0),
                    counts.get("failed", 0),
                    saved,
                    " ".join(targets),
                    _seal(tasks),
                ),
            )
            db.execute(
                "DELETE FROM runs WHERE started < (SELECT started FROM runs "
                "ORDER BY started DESC LIMIT 1 OFFSET ?)",
                (KEEP_RUNS,),
            )
            db.execute("COMMIT")

        self._guard(q)

    def mark_audited(self, run_id: str, mode: str, findings: int) -> None:
        """Note that a run was audited (--audit), in which mode, with how many findings."""

        def q(db: sqlite3.Connection) -> None:
            db.execute(AUDITS)
            db.execute("BEGIN")
            db.execute("INSERT OR REPLACE INTO audits VALUES (?,?,?)", (run_id, mode, findings))
            db.execute("DELETE FROM audits WHERE run_id NOT IN (SELECT id FROM runs)")
            db.execute("COMMIT")

        self._guard(q)

    def audits(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The audited runs among these: run id -> {mode, findings}."""

        def q(db: sqlite3.Connection) -> list[tuple[str, str, int]]:
            marks = ",".join("?" * len(run_ids))
            try:
                return db.execute(
                    f"SELECT run_id, mode, findings FROM audits WHERE run_id IN ({marks})",
                    run_ids,
                ).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []  # a store from before audits
                raise

        rows = self._guard(q, []) if run_ids else []
        return {r: {"mode": m, "findings": n} for r, m, n in rows}

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first (with `audit` for an audited one)."""
        cols = (
            "id",
            "started",
            "ended",
            "status",
            "ran",
            "hits",
            "restored",
            "failed",
            "saved",
            "targets",
        )
        rows = self._guard(
            lambda db: db.execute(
                f"SELECT {', '.join(cols)} FROM runs ORDER BY started DESC LIMIT ?", (limit,)
            ).fetchall(),
            [],
        )
        found = [dict(zip(cols, r, strict=True)) for r in rows]
        audits = self.audits([r["id"] for r in found])
        for r in found:
            if r["id"] in audits:
                r["audit"] = audits[r["id"]]
        return found

    def _outcomes(self, limit: int) -> list[tuple[str, float, list[tuple[str, str, float]]]]:
        """(run id, when it ended, its task outcomes) of the most recent runs."""
        rows = self._guard(
            lambda db: db.execute(
                "SELECT id, coalesce(ended, started), outcomes FROM runs "
                "ORDER BY started DESC LIMIT ?",
                (limit,),
            ).fetchall(),
            [],
        )
        return [(rid, ended, _unseal(data) or []) for rid, ended, data in rows]

    def task_history(self, task: str, limit: int = 20) -> list[dict[str, Any]]:
        """A task's outcomes in the most recent runs that had it, newest first."""
        found = []
        for run_id, ended, outcomes in self._outcomes(KEEP_RUNS):
            for name, status, duration in outcomes:
                if name == task:
                    found.append(
                        {
                            "run_id": run_id,
                            "status": status,
                            "duration": duration,
                            "finished": ended,
                        }
                    )
                    break
            if len(found) >= limit:
                break
        return found

    def last_statuses(self) -> dict[str, tuple[str, float]]:
        """Each task's status and duration in the last run that had it."""
        latest: dict[str, tuple[str, float]] = {}
        for _rid, _ended, outcomes in self._outcomes(200):
            for name, status, duration in outcomes:
                latest.setdefault(name, (status, duration))
        return latest

    # ------------------------------------------------------------ maintenance
    def info(self, last_runs: int = 20) -> dict[str, Any]:
        def q(db: sqlite3.Connection) -> dict[str, Any]:
            n, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
            runs = db.execute(
                "SELECT ran, hits, restored FROM runs ORDER BY started DESC LIMIT ?", (last_runs,)
            ).fetchall()
            tasks = db.execute("SELECT count(DISTINCT task) FROM entries").fetchone()[0]
            return {"entries": n, "entries_size": size, "tasks": tasks, "runs": runs}

        info = self._guard(q, {"entries": 0, "entries_size": 0, "tasks": 0, "runs": []})
        blobs = bytes_ = 0
        for dirpath, _dirs, files in os.walk(os.path.join(self.dir, "cas")):
            for f in files:
                blobs += 1
                try:
                    bytes_ += os.stat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        ran = sum(r[0] or 0 for r in info["runs"])
        hit = sum((r[1] or 0) + (r[2] or 0) for r in info["runs"])
        info.update(
            blobs=blobs,
            blob_bytes=bytes_,
            hit_rate=(hit / (hit + ran)) if (hit + ran) else None,
            runs_counted=len(info["runs"]),
        )
        return info

    def prune(self, *, max_size: int | None, older_than: float | None) -> tuple[int, int]:
        """Drop whole entries, least recently used first, until none is older than
        `older_than` seconds and their blobs fit in `max_size` bytes (an entry that
        names a missing blob goes first: it could never be restored); then delete the
        blobs no entry uses. A task record that names a dropped entry is replaced by a
        tombstone, so that the task runs again ("its cache entry was pruned") instead of
        finding an entry whose blobs are gone. Returns (entries removed, bytes freed)."""
        now = time.time()

        def q(db: sqlite3.Connection) -> list[bytes]:
            rows = db.execute(
                "SELECT key, manifest, last_used FROM entries ORDER BY last_used ASC"
            ).fetchall()
            entries = [(k, blobs_of(_outputs(m)), used) for k, m, used in rows]
            sizes: dict[bytes, int] = {}
            for _k, blobs, _u in entries:
                for d, size in blobs:
                    sizes[d] = size
            present = {d for d in sizes if self.blobs.has(d)}
            drop: list[bytes] = []
            kept = []
            for k, blobs, used in entries:
                if all(d in present for d, _size in blobs):
                    kept.append((k, blobs, used))
                else:
                    drop.append(k)
            refs: dict[bytes, int] = {}
            for _k, blobs, _u in kept:
                for d, _size in blobs:
                    refs[d] = refs.get(d, 0) + 1
            total = sum(sizes[d] for d in refs)
            for k, blobs, used in kept:  # least recently used first
                too_old = older_than is not None and now - used > older_than
                too_big = max_size is not None and total > max_size
                if not (too_old or too_big):
                    continue
                drop.append(k)
                for d, _size in blobs:
                    refs[d] -= 1
                    if refs[d] == 0:
                        total -= sizes[d]
            db.execute(SNAPSHOTS)
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM entries WHERE key=?", [(k,) for k in drop])
            left = {k for (k,) in db.execute("SELECT key FROM entries")}
            tombstone = _seal({"pruned": True})
            for task, data in db.execute("SELECT task, data FROM records").fetchall():
                record = _unseal(data)
                key = record.get("key") if isinstance(record, dict) else None
                if key is not None and key not in left and not task.startswith(":"):
                    db.execute("UPDATE records SET data=? WHERE task=?", (tombstone, task))
            # A snapshot vouches for tasks by their records: made again by the next run.
            db.execute("DELETE FROM snapshots")
            db.execute("COMMIT")
            return drop

        dropped = self._guard(q, [])
        freed = self.collect_garbage()
        return len(dropped), freed

    def collect_garbage(self) -> int:
        """Delete blobs that no entry refers to; bytes freed. Call it holding the
        project lock exclusively: a running runner stores blobs before their entry."""
        rows = self._guard(lambda db: db.execute("SELECT manifest FROM entries").fetchall())
        if rows is None:
            return 0  # the entries cannot be read: no blob is known to be unused
        used = {d.hex() for (m,) in rows for d, _size in blobs_of(_outputs(m))}
        freed = 0
        cas = os.path.join(self.dir, "cas")
        for dirpath, _dirs, files in os.walk(cas):
            for f in files:
                if os.path.basename(dirpath) + f not in used:
                    p = os.path.join(dirpath, f)
                    try:
                        freed += os.stat(p).st_size
                        os.unlink(p)
                    except OSError:
                        pass
        return freed

    def clean(self) -> None:
        """Forget every cache entry, blob, task record and snapshot, and temporary
        files; keep the run history (`runner history`)."""
        import shutil

        self.clear_temporaries()  # what a killed restore staged beside outputs, too

        def q(db: sqlite3.Connection) -> None:
            db.execute(SNAPSHOTS)
            db.execute("BEGIN IMMEDIATE")
            for table in ("entries", "records", "snapshots"):
                db.execute(f"DELETE FROM {table}")
            db.execute("COMMIT")
            db.execute("VACUUM")  # the file shrinks: a clean cache takes no room

        self._guard(q)
        self.close()
        for name in ("cas", "tmp"):
            shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        remove_file(os.path.join(self.dir, "tasksfile.code"))


# ------------------------------------------------------------ helpers


def _seal(value: Any) -> bytes:
    """marshal, with a digest in front so that damage is never trusted."""
    data = marshal.dumps(value)
    return digest(data)[:16] + data


def _unseal(blob: bytes) -> Any:
    if not isinstance(blob, bytes) or len(blob) < 16 or digest(blob[16:])[:16] != blob[:16]:
        return None
    try:
        return marshal.loads(blob[16:])
    except (ValueError, EOFError, TypeError):
        return None


def _outputs(sealed: bytes) -> list[tuple[Any, ...]]:
    manifest = _unseal(sealed)
    return manifest["outputs"] if manifest else []


def _io_trouble(e: Exception) -> bool:
    """A full disk or an I/O error: trouble with the machine, not damage to the file
    (which must not be moved aside for it)."""
    text = str(e).lower()
    return "disk is full" in text or "disk i/o error" in text


def _io_message(e: Exception, directory: str) -> str:
    try:
        st = os.statvfs(directory)
        full = st.f_bavail * st.f_frsize < (1 << 20)
    except OSError:
        full = False
    return "the disk is full" if full or "full" in str(e).lower() else f"{e}"


def _busy(e: Exception) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _ignore_in_git(cache_dir: str) -> None:
    """The cache directory keeps itself out of git (like .venv's own .gitignore)."""
    path = os.path.join(cache_dir, ".gitignore")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("# created by runner: its cache is never committed\n*\n")
