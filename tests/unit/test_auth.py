"""Auth and CSRF: every /api and /v1 route (enumerated from the app, not listed by hand)
refuses without credentials and accepts a bearer token or the session cookie; a
cross-origin state-changing request is refused even when logged in."""

from __future__ import annotations

import logging
import re
import stat

import pytest
from fastapi.testclient import TestClient

from app.access.auth import COOKIE
from app.config import Settings
from app.server import create_app

TOKEN = "correct-horse-battery-staple"


def routes(app) -> list[tuple[str, str]]:
    """(method, path) of every /api, /v1 and /metrics route, path parameters filled."""
    out = []
    for path, methods in app.openapi()["paths"].items():
        if path.startswith(("/api/", "/v1/", "/metrics")):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            out += [(method.upper(), concrete) for method in methods]
    return out


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, spark_control_token=TOKEN,
                            local_speech=False))
    with TestClient(app) as c:
        yield c


def test_the_route_list_covers_the_api(client):
    found = routes(client.app)
    assert len(found) >= 19
    assert ("POST", "/api/audio/transcribe-with-speakers") in found
    assert ("DELETE", "/api/audio/jobs/x") in found
    assert ("POST", "/v1/audio/speech") in found


def test_every_route_refuses_without_credentials(client):
    for method, path in routes(client.app):
        response = client.request(method, path)
        assert response.status_code == 401, (method, path, response.status_code)
        assert "Bearer" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_every_route_refuses_a_wrong_token(client):
    for method, path in routes(client.app):
        client.app.state.auth.throttle.forget("testclient")  # this test is not a guesser
        response = client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401, (method, path)


def test_every_route_accepts_the_bearer_token(client):
    for method, path in routes(client.app):
        response = client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code not in (401, 403), (method, path, response.text)


def test_every_route_accepts_the_session_cookie_from_the_login_link(client):
    login = client.get(f"/login?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    for method, path in routes(client.app):
        headers = {"Origin": "http://testserver"} if method != "GET" else {}
        response = client.request(method, path, headers=headers)
        assert response.status_code not in (401, 403), (method, path, response.text)


def test_wrong_token_at_login_is_401_and_sets_nothing(client):
    response = client.post("/login", data={"token": "guess"})
    assert response.status_code == 401 and "wrong token" in response.json()["detail"]
    assert COOKIE not in client.cookies
    assert client.get("/api/services").status_code == 401


def test_cross_origin_post_is_refused_even_with_a_session(client):
    assert client.post("/login", data={"token": TOKEN},
                       headers={"Origin": "http://testserver"}).status_code == 204
    evil = client.post("/api/services/parakeet-asr/stop",
                       headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-origin" in evil.json()["detail"]
    for fetch_site in ("cross-site", "same-site"):  # another port on the LAN is same-site
        response = client.delete("/api/audio/jobs/x", headers={"Sec-Fetch-Site": fetch_site})
        assert response.status_code == 403
    referer = client.post("/api/speech-models/reapply",
                          headers={"Referer": "http://evil.example/page"})
    assert referer.status_code == 403
    same = client.delete("/api/audio/jobs/x", headers={"Origin": "http://testserver"})
    assert same.status_code == 404  # passed the check; the job just does not exist


def test_login_from_another_origin_is_refused(client):
    response = client.post("/login", data={"token": TOKEN}, headers={"Origin": "http://evil"})
    assert response.status_code == 403


def test_logout_ends_the_session(client):
    client.get(f"/login?token={TOKEN}")
    assert client.get("/api/services").status_code == 200
    client.post("/logout", headers={"Origin": "http://testserver"})
    assert client.get("/api/services").status_code == 401


def _session(client) -> str:
    response = client.post("/login", data={"token": TOKEN}, headers={"Origin": "http://testserver"})
    assert response.status_code == 204
    return response.cookies[COOKIE]


def _with_cookie(client, session: str) -> int:
    client.cookies.clear()
    client.cookies.set(COOKIE, session)
    return client.get("/api/services").status_code


def test_a_kept_cookie_is_dead_after_logout_and_other_sessions_live_on(client):
    kept, other = _session(client), _session(client)
    assert kept != other and _with_cookie(client, kept) == 200
    client.cookies.clear()
    client.cookies.set(COOKIE, kept)
    client.post("/logout", headers={"Origin": "http://testserver"})
    assert _with_cookie(client, kept) == 401  # replaying the old cookie does not work
    assert _with_cookie(client, other) == 200


def test_sessions_survive_a_restart_and_die_with_a_new_token(tmp_path):
    def app(token: str):
        return TestClient(create_app(Settings(_env_file=None, data_dir=tmp_path,
                                              spark_control_token=token, local_speech=False)))

    with app(TOKEN) as first:
        session = _session(first)
    stored = (tmp_path / "sessions.json").read_text()
    assert session not in stored and TOKEN not in stored  # only digests are kept
    assert stat.S_IMODE((tmp_path / "sessions.json").stat().st_mode) == 0o600
    with app(TOKEN) as again:
        assert _with_cookie(again, session) == 200
    with app("a-completely-new-token-123") as changed:
        assert _with_cookie(changed, session) == 401


def test_login_guesses_are_throttled_per_address(client):
    for _ in range(10):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    throttled = client.post("/login", data={"token": TOKEN})  # even the right one, now
    assert throttled.status_code == 429
    assert throttled.json() == {"detail": throttled.json()["detail"], "error": "throttled"}
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    bearer = client.get("/api/services", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 429 and bearer.json()["error"] == "throttled"
    client.app.state.auth.throttle.forget("testclient")
    assert client.post("/login", data={"token": TOKEN}).status_code == 204


def test_bearer_guesses_count_too(client):
    for _ in range(10):
        assert client.get("/api/services", headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.get("/api/services", headers={"Authorization": "Bearer x"}).status_code == 429


def test_liveness_and_docs_stay_open(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_token_is_made_once_kept_private_and_its_login_url_logged_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    first = create_app(Settings(_env_file=None, data_dir=tmp_path, local_speech=False)).state.auth.token
    path = tmp_path / "auth-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first and len(first) >= 32
    assert sum(f"login?token={first}" in r.message for r in caplog.records) == 1
    caplog.clear()
    again = create_app(Settings(_env_file=None, data_dir=tmp_path, local_speech=False)).state.auth.token
    assert again == first
    assert not any("login?token=" in r.message for r in caplog.records)


def test_auth_disabled_opens_the_api_but_keeps_the_origin_check(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, auth_disabled=True,
                            local_speech=False))
    assert any("AUTH_DISABLED" in r.message for r in caplog.records)
    with TestClient(app) as c:
        assert c.get("/api/services").status_code == 200
        cross = c.post("/api/services/x/start", headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
    assert not (tmp_path / "auth-token").exists()


def test_a_short_configured_token_is_a_configuration_error(tmp_path):
    with pytest.raises(ValueError, match="16"):
        Settings(_env_file=None, data_dir=tmp_path, spark_control_token="short")


def test_a_wrong_bearer_is_401_even_with_a_session(client):
    """It used to skip the same-origin check, and then the cookie let it through."""
    client.get(f"/login?token={TOKEN}")
    wrong = {"Authorization": "Bearer not-the-token", "Origin": "http://evil.example"}
    response = client.post("/api/services/parakeet-asr/stop", headers=wrong)
    assert response.status_code == 401 and "bearer token is wrong" in response.json()["detail"]
    assert client.get("/api/services", headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/services", headers=right).status_code == 200


def test_the_origin_check_compares_the_scheme_too(client):
    client.get(f"/login?token={TOKEN}")
    other_scheme = client.delete("/api/audio/jobs/x", headers={"Origin": "https://testserver"})
    assert other_scheme.status_code == 403
    same = client.delete("/api/audio/jobs/x", headers={"Origin": "http://testserver"})
    assert same.status_code == 404


@pytest.mark.parametrize("path", ["/", "/api/services", "/livez", "/nowhere", "/docs"])
def test_every_response_forbids_framing_and_sniffing(client, path):
    client.get(f"/login?token={TOKEN}")
    headers = client.get(path).headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    if path == "/":
        assert "script-src 'self'" in headers["content-security-policy"]


def test_dns_rebinding_is_refused_by_the_host_name_even_without_auth(tmp_path):
    """evil.example re-pointed at this machine: Origin and Host agree, so only the Host
    allow-list can tell (the attack stopped services with AUTH_DISABLED=true)."""
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, auth_disabled=True,
                              local_speech=False, allowed_hosts=["spark-control.lan"]))
    with TestClient(app, base_url="http://evil.example") as evil:
        response = evil.post("/api/services/parakeet-asr/stop",
                             headers={"Origin": "http://evil.example"})
        assert response.status_code == 400 and response.json()["error"] == "bad_host"
        assert "ALLOWED_HOSTS" in response.json()["detail"]
        assert evil.get("/").status_code == 400  # the dashboard too
    for name in ("http://localhost:9999", "http://127.0.0.1", "http://[::1]:9999",
                 "http://spark-control.lan:9999", "http://SPARK-CONTROL.LAN."):
        with TestClient(app, base_url=name) as client:
            assert client.get("/livez").status_code == 200, name


def test_allowed_hosts_reads_a_comma_separated_list(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLOWED_HOSTS", "a.lan, 192.168.1.20,")
    assert Settings(_env_file=None).allowed_hosts == ["a.lan", "192.168.1.20"]
