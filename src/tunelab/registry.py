"""The run store: one self-contained folder per run, and an SQLite index over them.

A run is written into a hidden folder (`.<id>.incomplete`, locked by its writer) and renamed into
place only when complete, then indexed, so a crash never leaves a half-written run listed. A killed
run that left checkpoints behind keeps its hidden folder, and `tunelab train --resume <id>` picks it
up. Folders are the truth; the index is how runs outside the store root are found and how listing
stays fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import UserError, did_you_mean

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INCOMPLETE = re.compile(r"^\.(?P<id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.incomplete$")
MANIFEST = "run.json"
CHECKPOINTS = "checkpoints"  # inside a draft: what makes an interrupted run resumable
LOCK = ".lock"


def default_store_root() -> Path:
    """$TUNELAB_HOME if set, else ./runs."""
    return Path(os.environ.get("TUNELAB_HOME") or "runs")


@dataclass
class Run:
    """A finished run: its id, folder, and manifest (run.json)."""

    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        """'run' for a trained model, 'comparison' for a compare table."""
        return self.manifest.get("kind", "run")


@dataclass
class Draft:
    """A run being written: files go into `path`, which becomes `final` on success."""

    id: str
    path: Path
    final: Path
    resumed: bool = False


def _try_lock(folder: Path) -> Any:
    """An exclusive lock on the folder's lock file, or None when a live process holds it (the OS drops it at death)."""
    handle = open(folder / LOCK, "a+")  # noqa: SIM115 - held for the whole write
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _holder(folder: Path) -> str:
    try:
        return (folder / LOCK).read_text().strip() or "?"
    except OSError:
        return "?"


def _resumable(folder: Path) -> bool:
    checkpoints = folder / CHECKPOINTS
    return checkpoints.is_dir() and any((c / "trainer_state.json").is_file() for c in checkpoints.iterdir())


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def folder_size(path: Path) -> int:
    """Bytes on disk of every file under `path`."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class RunStore:
    """Create, list, find and remove runs under a root folder."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()

    @property
    def index_path(self) -> Path:
        """The SQLite index file."""
        return self.root / "index.sqlite"

    def _db(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.index_path, timeout=60)
        db.execute(
            "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL,"
            " created REAL NOT NULL, manifest TEXT NOT NULL)"
        )
        return db

    @contextmanager
    def writing(self, output_dir: str | None, prefix: str, resume: Path | None = None) -> Iterator[Draft]:
        """Yield a Draft (a new one, or the interrupted one `resume` names); on success renamed into place and indexed.

        On error the draft is removed, unless it holds checkpoints to resume from.
        """
        if resume is not None:
            tmp, run_id = resume, INCOMPLETE.match(resume.name)["id"]
            final = tmp.parent / run_id
            lock = _try_lock(tmp)
            if lock is None:
                raise UserError(f"run {run_id!r}: still being written by process {_holder(tmp)}; nothing to resume")
        else:
            run_id, final = self._new_location(output_dir, prefix)
            tmp = final.parent / f".{run_id}.incomplete"
            if tmp.exists():
                raise UserError(self._interrupted_message(run_id, tmp))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.mkdir()
            except FileExistsError:
                raise UserError(self._interrupted_message(run_id, tmp)) from None
            lock = _try_lock(tmp)
        try:
            yield Draft(run_id, tmp, final, resumed=resume is not None)
            shutil.rmtree(tmp / CHECKPOINTS, ignore_errors=True)  # training state does not belong in a run
            (tmp / LOCK).unlink()
            if final.exists():
                final.rmdir()  # an empty folder the user created for us
            os.replace(tmp, final)
        except BaseException:
            if not _resumable(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            lock.close()
        self._index(Run(run_id, final.resolve(), json.loads((final / MANIFEST).read_text())))

    def _new_location(self, output_dir: str | None, prefix: str) -> tuple[str, Path]:
        if output_dir:
            final = Path(output_dir)
            run_id = final.name
        else:
            run_id = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"
            final = self.root / run_id
        if not RUN_ID.match(run_id):
            raise UserError(f"output dir {final}: run name {run_id!r} must be letters, digits, '.', '_' or '-'")
        if final.exists() and any(final.iterdir()):
            raise UserError(f"output dir {final}: already exists and is not empty; choose another or `tunelab runs rm {run_id}`")
        existing = self._find(run_id)
        if existing is not None:
            raise UserError(f"run {run_id!r}: a run of that name is already in the store at {existing.path}")
        return run_id, final

    @staticmethod
    def _interrupted_message(run_id: str, tmp: Path) -> str:
        lock = _try_lock(tmp)
        if lock is None:
            return f"run {run_id!r}: already being written by process {_holder(tmp)} ({tmp})"
        lock.close()
        return (f"run {run_id!r}: an interrupted run of that name is at {tmp}; continue it with"
                f" `tunelab train --resume {run_id}` or delete it with `tunelab runs rm {run_id}`")

    def interrupted(self) -> list[tuple[str, Path]]:
        """(id, folder) of runs under the root whose writer died, oldest first; those with checkpoints can be resumed."""
        found = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                match = INCOMPLETE.match(folder.name)
                if match and folder.is_dir():
                    lock = _try_lock(folder)
                    if lock is not None:
                        lock.close()
                        found.append((match["id"], folder))
        return sorted(found, key=lambda item: item[1].stat().st_mtime)

    def find_interrupted(self, reference: str) -> Path:
        """The hidden folder of an interrupted run, from its id, its intended output folder, or the hidden folder itself."""
        given = Path(reference)
        candidates = [given, given.parent / f".{given.name}.incomplete", self.root / f".{reference}.incomplete"]
        for candidate in candidates:
            if INCOMPLETE.match(candidate.name) and candidate.is_dir():
                if not _resumable(candidate):
                    raise UserError(f"run {reference!r}: {candidate} holds no complete checkpoint to resume from;"
                                    f" delete it with `tunelab runs rm {INCOMPLETE.match(candidate.name)['id']}` and train again")
                return candidate
        if RUN_ID.match(given.name) and self._find(given.name) is not None:
            raise UserError(f"run {given.name!r}: already finished; nothing to resume")
        known = [run_id for run_id, _ in self.interrupted()]
        listing = f"; interrupted runs: {', '.join(known)}" if known else "; there are no interrupted runs"
        raise UserError(f"run {reference!r}: no interrupted run of that name in {self.root}"
                        f"{did_you_mean(given.name, known)}{listing}")

    def _index(self, run: Run) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                       (run.id, str(run.path), run.kind, time.time(), json.dumps(run.manifest)))

    def _find(self, run_id: str) -> Run | None:
        path = None
        if self.index_path.exists():
            with self._db() as db:
                row = db.execute("SELECT path FROM runs WHERE id = ?", (run_id,)).fetchone()
            path = Path(row[0]) if row else None
        if path is None or not (path / MANIFEST).is_file():
            path = self.root / run_id
        if RUN_ID.match(run_id) and (path / MANIFEST).is_file():
            return Run(run_id, path, json.loads((path / MANIFEST).read_text()))
        return None

    def get(self, run_id: str) -> Run:
        """The run with this id (or a path to a run folder); a clear error if there is none."""
        candidate = Path(run_id)
        if (candidate / MANIFEST).is_file():
            return Run(candidate.resolve().name, candidate.resolve(), json.loads((candidate / MANIFEST).read_text()))
        run = self._find(run_id) if RUN_ID.match(run_id) else None
        if run is None:
            known = [r.id for r in self.list()]
            raise UserError(f"run {run_id!r}: not found in {self.root}{did_you_mean(run_id, known)}; see `tunelab runs list`")
        return run

    def list(self) -> list[Run]:
        """All complete runs, oldest first: indexed ones plus complete folders under the root."""
        runs: dict[str, Run] = {}
        if self.index_path.exists():
            with self._db() as db:
                rows = db.execute("SELECT id, path FROM runs ORDER BY created").fetchall()
            for run_id, path in rows:
                if (Path(path) / MANIFEST).is_file():
                    runs[run_id] = Run(run_id, Path(path), json.loads((Path(path) / MANIFEST).read_text()))
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if folder.name not in runs and RUN_ID.match(folder.name) and (folder / MANIFEST).is_file():
                    run = Run(folder.name, folder.resolve(), json.loads((folder / MANIFEST).read_text()))
                    runs[run.id] = run
                    self._index(run)
        return sorted(runs.values(), key=lambda r: r.manifest.get("created", ""))

    def remove(self, run_id: str) -> Run:
        """Delete a run's folder and its index entry (or an interrupted run's hidden folder)."""
        hidden = self.root / f".{run_id}.incomplete"
        if RUN_ID.match(run_id) and self._find(run_id) is None and hidden.is_dir():
            lock = _try_lock(hidden)
            if lock is None:
                raise UserError(f"run {run_id!r}: still being written by process {_holder(hidden)}; not removed")
            lock.close()
            shutil.rmtree(hidden)
            return Run(run_id, hidden, {"kind": "interrupted"})
        run = self.get(run_id)
        shutil.rmtree(run.path)
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        return run
