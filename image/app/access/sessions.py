"""Dashboard sessions: a random id per login, kept in DATA_DIR/sessions.json.

The cookie carries the id; the file keeps only its sha256 (reading the file gives
no session), with the fingerprint of the token it was granted for. So logout
revokes one session, a changed token revokes them all, and sessions survive a
restart of spark-control. Sessions last SESSION_DAYS from login.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
SESSION_DAYS = 30
MAX_SESSIONS = 200  # a browser per login; the oldest go first past this


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Sessions:
    def __init__(self, path: Path, token: str, clock=time.time) -> None:
        self.path = path
        self.token_fp = _digest("token:" + token)[:16]
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, float] = self._load()  # sha256(id) -> expiry (unix time)

    def create(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._live[_digest(session)] = self._clock() + SESSION_DAYS * 86400
            while len(self._live) > MAX_SESSIONS:
                del self._live[min(self._live, key=self._live.__getitem__)]
            self._save()
        return session

    def valid(self, session: str) -> bool:
        if not session:
            return False
        expiry = self._live.get(_digest(session))
        return expiry is not None and expiry > self._clock()

    def revoke(self, session: str) -> bool:
        with self._lock:
            found = self._live.pop(_digest(session), None) is not None
            if found:
                self._save()
        return found

    def _load(self) -> dict[str, float]:
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s): every browser logs in again",
                        self.path, exc)
            return {}
        if not isinstance(stored, dict) or stored.get("token") != self.token_fp:
            return {}  # granted for another token: revoked
        now = self._clock()
        return {k: float(v) for k, v in dict(stored.get("sessions", {})).items()
                if isinstance(v, (int, float)) and v > now}

    def _save(self) -> None:
        data = json.dumps({"token": self.token_fp, "sessions": self._live})
        tmp = self.path.with_suffix(".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)  # never a half-written file after a crash
