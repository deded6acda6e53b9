"""Synthetic multi-speaker test conversations with ground truth, and their scoring.

`generate` speaks seeded meeting sentences with distinct espeak-ng voices and writes
the audio together with its reference (RTTM turns, per-line text and times);
`evaluate` scores a speech server's transcription and diarization against it
(WER, DER, word-to-speaker accuracy). Both exist so speech engines can be compared
on audio whose truth is known exactly, offline and reproducibly.
"""
