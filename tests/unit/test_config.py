from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings, load_settings, parse_memory


def settings(**values) -> Settings:
    return load_settings(_env_file=None, **values)


def test_memory_sizes_use_dockers_binary_units():
    assert parse_memory("40g") == 40 * 1024**3
    assert parse_memory("512M") == 512 * 1024**2
    assert parse_memory("1073741824") == 1024**3
    for bad in ("lots", "40gb", "-1g", "1k"):
        with pytest.raises(ValueError):
            parse_memory(bad)


def test_bad_values_name_their_variable():
    with pytest.raises(ConfigError) as info:
        settings(parakeet_memory_limit="forty", spark2_ssh_port=0, parakeet_container="a b;c")
    message = str(info.value)
    assert "PARAKEET_MEMORY_LIMIT: 'forty' is not a size like 40g" in message
    assert "SPARK2_SSH_PORT" in message
    assert "PARAKEET_CONTAINER" in message


def test_urls_default_to_the_spark_host(tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    s = settings(spark2_host="spark2.lan", ssh_key_path=key, ssh_known_hosts=key)
    assert s.parakeet_url == "http://spark2.lan:8000"
    assert s.magpie_url == "http://spark2.lan:9000"
    specs = s.service_specs()
    assert [(x.name, x.kind, x.memory_limit) for x in specs] == [
        ("parakeet-asr", "asr", "40g"), ("magpie-tts", "tts", None)]


def test_missing_key_files_stop_startup(tmp_path):
    with pytest.raises(ConfigError) as info:
        settings(spark2_host="spark2.lan", ssh_key_path=tmp_path / "nokey",
                 ssh_known_hosts=tmp_path / "nohosts")
    assert "SSH_KEY_PATH: no such file" in str(info.value)
    assert "SSH_KNOWN_HOSTS: no such file" in str(info.value)


def test_an_unreadable_key_and_an_unwritable_data_dir_stop_startup(tmp_path, monkeypatch):
    """As uid 1000 in the image meets a root-only key and a root-owned /data (root here
    passes every access check: os.access is what refuses, as for that user)."""
    key, hosts, data = tmp_path / "key", tmp_path / "known_hosts", tmp_path / "data"
    for path in (key, hosts):
        path.write_text("x")
    key.chmod(0o600)
    data.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) in (key, data)
                        else real(p, mode))
    with pytest.raises(ConfigError) as info:
        settings(spark2_host="spark2.lan", ssh_key_path=key, ssh_known_hosts=hosts,
                 data_dir=data / "sub")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"DATA_DIR: {data} is not writable by uid ")
    assert "chown -R" in lines[0]
    assert lines[1].startswith(f"SSH_KEY_PATH: {key} is not readable by uid ")
    assert "mode 0600" in lines[1]


def test_services_list_is_configurable_from_json_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVICES", '[{"name": "asr2", "container": "asr2",'
                       ' "url": "http://10.0.0.2:8001/", "kind": "asr", "memory_limit": "8g"}]')
    s = Settings(_env_file=None)
    assert s.service_specs()[0].url == "http://10.0.0.2:8001"
    assert s.service_specs()[0].memory_limit_bytes == 8 * 1024**3


def test_docker_cmd_is_split_into_argv():
    assert settings(docker_cmd="sudo -n docker").docker_argv == ["sudo", "-n", "docker"]
    with pytest.raises(ConfigError, match="DOCKER_CMD"):
        settings(docker_cmd="  ")


def test_cli_refuses_to_start_on_bad_settings():
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; raise SystemExit(main())"],
        env={**os.environ, "PARAKEET_MEMORY_LIMIT": "lots", "SPARK2_SSH_PORT": "70000"},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "PARAKEET_MEMORY_LIMIT: 'lots' is not a size like 40g" in result.stderr
    assert "SPARK2_SSH_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_hosts_come_from_json_and_a_bad_entry_is_named(monkeypatch, tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    good = {"name": "spark1", "ssh_host": "spark1.lan", "ssh_key_path": str(key),
            "ssh_known_hosts": str(key)}
    monkeypatch.setenv("HOSTS", json.dumps([good, {"name": "lb", "parakeet_url":
                                                   "http://riva.lan:9000"}]))
    pool = settings(data_dir=tmp_path)
    assert [h.name for h in pool.hosts] == ["spark1", "lb"]
    assert pool.hosts[0].managed and not pool.hosts[1].managed
    monkeypatch.setenv("HOSTS", json.dumps([good, {**good, "name": "spark3",
                                                   "ssh_port": 99999}]))
    with pytest.raises(ConfigError) as bad:
        settings(data_dir=tmp_path)
    assert "HOSTS[1].ssh_port" in str(bad.value)
    monkeypatch.setenv("HOSTS", json.dumps([{"name": "x"}]))
    with pytest.raises(ConfigError) as neither:
        settings(data_dir=tmp_path)
    assert "HOSTS[0]" in str(neither.value) and "ssh_host" in str(neither.value)


def test_a_host_named_like_the_spark2_host_or_missing_its_key_is_refused(monkeypatch,
                                                                        tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    monkeypatch.setenv("HOSTS", json.dumps([{"name": "spark2", "ssh_host": "b.lan"}]))
    with pytest.raises(ConfigError) as twice:
        settings(spark2_host="a.lan", ssh_key_path=key, ssh_known_hosts=key, data_dir=tmp_path)
    assert "HOSTS[0] (spark2)" in str(twice.value) and "SPARK2_HOST" in str(twice.value)
    monkeypatch.setenv("HOSTS", json.dumps([{"name": "spark1", "ssh_host": "b.lan",
                                             "ssh_key_path": str(tmp_path / "none")}]))
    with pytest.raises(ConfigError) as keyless:
        settings(spark2_host="a.lan", ssh_key_path=key, ssh_known_hosts=key, data_dir=tmp_path)
    assert "HOSTS[0] (spark1) ssh_key_path: no such file" in str(keyless.value)
