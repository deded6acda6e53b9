"""SQLite files under DATA_DIR, opened one way: private, WAL, deletes that delete.

Transcripts and voiceprints are personal data, so each file is this user's alone
(0600, made so before SQLite writes a byte; SQLite gives its -wal and -shm files the
same mode). `secure_delete` overwrites deleted rows instead of leaving them in free
pages. WAL lets readers go on while one writer writes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_db(path: Path) -> sqlite3.Connection:
    """A connection for worker threads (callers serialise it with a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)  # a file from before, or made under a wider umask
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "secure_delete=ON"):
        db.execute(f"PRAGMA {pragma}")
    return db
