"""The run store: one self-contained folder per run, and an SQLite index over them.

A run is written into a hidden temporary folder and renamed into place only when complete, then
indexed, so a crash never leaves a half-written run listed. Folders are the truth; the index is
how runs outside the store root are found and how listing stays fast.
"""

from __future__ import annotations

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
MANIFEST = "run.json"


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
    def writing(self, output_dir: str | None, prefix: str) -> Iterator[Draft]:
        """Yield a Draft; on success the folder is renamed into place and indexed, on error removed."""
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
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{run_id}.incomplete-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield Draft(run_id, tmp, final)
            if final.exists():
                final.rmdir()  # an empty folder the user created for us
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._index(Run(run_id, final.resolve(), json.loads((final / MANIFEST).read_text())))

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
        """Delete a run's folder and its index entry."""
        run = self.get(run_id)
        shutil.rmtree(run.path)
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        return run
