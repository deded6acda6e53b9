"""Canned speech-server answers for respx, for tests that inject faults upstream."""

from __future__ import annotations

URL = "http://asr.test:8000"
DIAR = {"duration": 2.0, "speakers_detected": 1, "models": {"asr": "a", "diarizer": "d"},
        "segments": [{"start_s": 0.0, "end_s": 2.0, "speaker": "Speaker_0", "confidence": 1}]}
WORDS = {"language": "english", "words": [{"word": "Hi", "start": 0.1, "end": 0.3},
                                          {"word": "there.", "start": 0.4, "end": 0.8}]}
