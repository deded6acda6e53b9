"""Audio jobs and their results on disk: one SQLite file under DATA_DIR.

Every state change is written through, so a finished result survives a restart of
spark-control and a job that was queued or running when the process ended can be
found and marked failed at the next start. A job's voiceprints live in its row and go
with it (deleted rows are overwritten: `secure_delete`). Calls run in a worker thread
(SQLite blocks); one lock serialises them on the single connection.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from ..storage import open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS audio_jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,     -- the AudioJob as JSON
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    result TEXT,             -- the SpeakersResult as JSON, once done
    voices TEXT              -- its speakers' voiceprints (Voices as JSON), never served
);
CREATE INDEX IF NOT EXISTS audio_jobs_created ON audio_jobs (created_at);
"""


class JobStore:
    def __init__(self, path: Path) -> None:
        self._db = open_db(path)  # private, WAL, secure_delete: a deleted job is gone
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(audio_jobs)")}
        if "voices" not in columns:  # a file from before voiceprints were kept
            self._db.execute("ALTER TABLE audio_jobs ADD COLUMN voices TEXT")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        return await asyncio.to_thread(run)

    async def save(self, job_id: str, state: str, status: str, created_at: float,
                   finished_at: float | None) -> None:
        await self._run("INSERT INTO audio_jobs (id, state, status, created_at, finished_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                        "state = excluded.state, status = excluded.status, "
                        "finished_at = excluded.finished_at",
                        (job_id, state, status, created_at, finished_at))

    async def save_result(self, job_id: str, result: str, voices: str) -> None:
        await self._run("UPDATE audio_jobs SET result = ?, voices = ? WHERE id = ?",
                        (result, voices, job_id))

    async def state(self, job_id: str) -> str | None:
        rows = await self._run("SELECT state FROM audio_jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    async def result(self, job_id: str) -> tuple[str | None, str | None] | None:
        """(result, voices) as JSON; None for an unknown job."""
        rows = await self._run("SELECT result, voices FROM audio_jobs WHERE id = ?", (job_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def recent(self, limit: int) -> list[str]:
        rows = await self._run("SELECT state FROM audio_jobs ORDER BY created_at DESC "
                               "LIMIT ?", (limit,))
        return [r[0] for r in rows]

    async def unfinished(self) -> list[str]:
        rows = await self._run("SELECT state FROM audio_jobs "
                               "WHERE status IN ('queued', 'running')")
        return [r[0] for r in rows]

    async def delete(self, job_id: str) -> None:
        await self._run("DELETE FROM audio_jobs WHERE id = ?", (job_id,))
        await self._run("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy of its prints left

    async def expire(self, finished_before: float) -> list[str]:
        """Delete jobs that finished before the given time; their ids."""
        rows = await self._run("DELETE FROM audio_jobs WHERE finished_at IS NOT NULL AND "
                               "finished_at < ? RETURNING id", (finished_before,))
        if rows:
            await self._run("PRAGMA wal_checkpoint(TRUNCATE)")
        return [r[0] for r in rows]
