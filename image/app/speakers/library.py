"""The voice library: enrolled people and their voiceprints, in DATA_DIR/speakers.sqlite3.

A person has a name (unique, case-insensitive) and any number of samples; each sample
is one print of one embedding model, stored as float32 with the seconds of speech
behind it. Matching scores a person by the closest of their prints of the model at
hand (matching.py); prints of other models are kept for when that model is used
again, never compared.

Deleting is meant to remove the data, not hide it: `secure_delete` overwrites
deleted rows in the file, and the write-ahead log is truncated after each delete.
Calls run in a worker thread (SQLite blocks), one at a time on one connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from pydantic import BaseModel

from ..storage import open_db
from ..audio.stitching import unit
from .matching import Known

T = TypeVar("T")
Source = Literal["upload", "job"]
MAX_SAMPLES = 50  # per person and model: rooms and microphones enough, and the file stays small

SCHEMA = """
CREATE TABLE IF NOT EXISTS speakers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS voiceprints (
    id INTEGER PRIMARY KEY,
    speaker_id TEXT NOT NULL REFERENCES speakers (id) ON DELETE CASCADE,
    model TEXT NOT NULL,       -- the embedding model that made it
    vector BLOB NOT NULL,      -- float32, unit length
    seconds REAL NOT NULL,     -- speech behind it
    source TEXT NOT NULL,      -- upload | job
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS voiceprints_speaker ON voiceprints (speaker_id, model);
"""


class Sample(BaseModel):
    id: int
    model: str
    seconds: float
    source: Source
    created_at: float


class Speaker(BaseModel):
    """An enrolled person as the API shows them: never their prints."""

    id: str
    name: str
    created_at: float
    samples: list[Sample]


class NameTaken(Exception):
    def __init__(self, name: str, speaker_id: str) -> None:
        super().__init__(f"a speaker named {name!r} is already enrolled (id {speaker_id}); "
                         f"add a sample to them at /api/speakers/{speaker_id}/samples")
        self.speaker_id = speaker_id


class TooManySamples(Exception):
    pass


class VoiceLibrary:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path)  # 0600, WAL, secure_delete
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                return fn(self._db)
        return await asyncio.to_thread(run)

    # -- reading -------------------------------------------------------------------

    async def all(self) -> list[Speaker]:
        return await self._call(lambda db: [_speaker(db, row) for row in db.execute(
            "SELECT id, name, created_at FROM speakers ORDER BY name COLLATE NOCASE")])

    async def get(self, speaker_id: str) -> Speaker | None:
        return await self._one("id", speaker_id)

    async def find(self, name: str) -> Speaker | None:
        """The person of that name, ignoring case."""
        return await self._one("name", name)

    async def _one(self, column: str, value: str) -> Speaker | None:
        def read(db: sqlite3.Connection) -> Speaker | None:
            row = db.execute(f"SELECT id, name, created_at FROM speakers WHERE {column} = ?",
                             (value,)).fetchone()  # column: "id" or "name", never input
            return _speaker(db, row) if row else None
        return await self._call(read)

    async def known(self, model: str) -> list[Known]:
        """Each enrolled person's prints of `model` (people without one are left out)."""
        def read(db: sqlite3.Connection) -> list[Known]:
            rows = db.execute("SELECT s.id, s.name, v.vector FROM voiceprints v JOIN speakers s "
                              "ON s.id = v.speaker_id WHERE v.model = ? ORDER BY s.id",
                              (model,)).fetchall()
            grouped: dict[tuple[str, str], list[np.ndarray]] = {}
            for speaker_id, name, blob in rows:
                grouped.setdefault((speaker_id, name), []).append(
                    unit(np.frombuffer(blob, dtype=np.float32)))
            return [Known(sid, name, np.stack(vectors))
                    for (sid, name), vectors in grouped.items()]
        return await self._call(read)

    # -- changing ------------------------------------------------------------------

    async def create(self, name: str) -> str:
        """A new person with no samples yet; their id. NameTaken if the name is used."""
        def write(db: sqlite3.Connection) -> str:
            taken = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if taken:
                raise NameTaken(name, taken[0])
            speaker_id = uuid.uuid4().hex[:12]
            db.execute("INSERT INTO speakers (id, name, created_at) VALUES (?, ?, ?)",
                       (speaker_id, name, time.time()))
            return speaker_id
        return await self._call(write)

    async def add_sample(self, speaker_id: str, model: str, vector: Sequence[float],
                         seconds: float, source: Source) -> None:
        blob = unit(vector).astype(np.float32).tobytes()

        def write(db: sqlite3.Connection) -> None:
            count = db.execute("SELECT COUNT(*) FROM voiceprints WHERE speaker_id = ? AND "
                               "model = ?", (speaker_id, model)).fetchone()[0]
            if count >= MAX_SAMPLES:
                raise TooManySamples(f"this speaker already has {MAX_SAMPLES} samples of "
                                     "this model; delete some first")
            db.execute("INSERT INTO voiceprints (speaker_id, model, vector, seconds, source, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (speaker_id, model, blob, round(seconds, 2), source, time.time()))
        await self._call(write)

    async def rename(self, speaker_id: str, name: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            taken = db.execute("SELECT id FROM speakers WHERE name = ? AND id != ?",
                               (name, speaker_id)).fetchone()
            if taken:
                raise NameTaken(name, taken[0])
            return db.execute("UPDATE speakers SET name = ? WHERE id = ?",
                              (name, speaker_id)).rowcount > 0
        return await self._call(write)

    async def delete(self, speaker_id: str) -> bool:
        """Remove the person and every print of theirs, from the file too."""
        return await self._forget("DELETE FROM speakers WHERE id = ?", (speaker_id,))

    async def delete_sample(self, speaker_id: str, sample_id: int) -> bool:
        return await self._forget("DELETE FROM voiceprints WHERE speaker_id = ? AND id = ?",
                                  (speaker_id, sample_id))

    async def _forget(self, sql: str, args: tuple[object, ...]) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            gone = db.execute(sql, args).rowcount > 0
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left in the log
            return gone
        return await self._call(write)


def _speaker(db: sqlite3.Connection, row: tuple[str, str, float]) -> Speaker:
    samples = [Sample(id=i, model=m, seconds=s, source=src, created_at=c) for i, m, s, src, c
               in db.execute("SELECT id, model, seconds, source, created_at FROM voiceprints "
                             "WHERE speaker_id = ? ORDER BY created_at", (row[0],))]
    return Speaker(id=row[0], name=row[1], created_at=row[2], samples=samples)
