from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from app.errors import HostUnreachable
from app.remote.ssh import SSHClient, SSHTarget
from sim.spark2 import free_ports


def target(known_hosts: Path | None, port: int = 22) -> SSHTarget:
    return SSHTarget(host="127.0.0.1", port=port, user="root", key_path=Path("/nonexistent"),
                     known_hosts=known_hosts, connect_timeout=1)


def test_switching_host_key_checking_off_warns_at_every_start(caplog):
    caplog.set_level(logging.WARNING, logger="app.remote.ssh")
    SSHClient(target(None))
    SSHClient(target(None))
    warnings = [r for r in caplog.records if "host key checking is OFF" in r.getMessage()]
    assert len(warnings) == 2


def test_checking_on_does_not_warn(caplog):
    caplog.set_level(logging.WARNING, logger="app.remote.ssh")
    SSHClient(target(Path("/etc/ssh/ssh_known_hosts")))
    assert not caplog.records


def test_nothing_listening_is_unreachable_quickly():
    port = free_ports(1)[0]
    client = SSHClient(target(Path("/dev/null"), port))
    with pytest.raises(HostUnreachable, match=f"cannot reach SSH on 127.0.0.1:{port}"):
        asyncio.run(client.run(["true"]))
