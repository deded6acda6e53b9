"""The speech server as a real process with ENGINE=nemo on the real toolkit: the same
contract tests as the CPU engine (tests/speech/test_contract.py, all but accuracy), and
a clear /health error when a model cannot be had."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from speech.test_contract import (  # noqa: F401  (collected here, against `server`)
    test_bad_input_is_a_4xx_with_a_message,
    test_diarize_chunk_gives_one_unit_fingerprint_per_speaker,
    test_diarize_gives_turns_in_the_clip,
    test_every_response_format,
    test_health,
    test_verbose_json_words_follow_the_clip,
)
from speech_server import SpeechServer, health, start


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory) -> Iterator[SpeechServer]:
    """ENGINE=nemo on the default hub names, from the offline cache."""
    yield from start("nemo", tmp_path_factory.mktemp("nemo-server"), {})


def test_health_names_the_real_models(server):
    body = httpx.get(f"{server.url}/health").json()
    assert body["models"] == {"asr": "nvidia/parakeet-tdt-0.6b-v3",
                              "diarizer": "nvidia/diar_sortformer_4spk-v1",
                              "embedding": "nvidia/speakerverification_en_titanet_large"}
    assert body["load_seconds"] > 0


def test_a_model_that_cannot_be_had_is_a_health_error_not_a_traceback(tiny, tmp_path):
    missing = "nvidia/parakeet-tdt-9b-v9"
    run = start("nemo", tmp_path, {"ASR_MODEL": missing}, want="error")
    server = next(run)
    try:
        body = health(server.url)
        assert body["status"] == "error" and body["asr_loaded"] is False
        assert f"ASR_MODEL={missing} is not in the Hugging Face cache" in body["error"]
        assert "Traceback" not in body["error"] and "Traceback" not in server.log.read_text()
        response = httpx.post(f"{server.url}/v1/audio/transcriptions",
                              files={"file": ("a.wav", b"RIFF")})
        assert response.status_code == 503 and missing in response.json()["detail"]
    finally:
        run.close()
