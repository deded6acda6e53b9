"""Voiceprints for enrollment: from an uploaded sample of one person, or from a
speaker of a finished job (whose prints the job kept)."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException

from ..audio.merge import talk_seconds
from ..audio.pipeline import VoicePrint, Voices
from ..audio.speech_client import SpeechClient
from .thresholds import MIN_ENROLL_S

OTHER_VOICE_SHARE = 0.2  # a second voice with this share of the speech: not one person


def from_job(voices: Voices, job_id: str, label: str) -> tuple[str, VoicePrint]:
    """(model, print) of `label` in a finished job."""
    voice = voices.prints.get(label)
    if voice is None:
        known = ", ".join(sorted(voices.prints)) or "none with a voiceprint"
        raise HTTPException(422, f"job {job_id} has no speaker {label!r} (its speakers: "
                                 f"{known})")
    _enough(voice.seconds, f"{label} speaks for only {voice.seconds:.1f} s in that recording")
    return voices.model, voice


async def from_sample(client: SpeechClient, wav: Path) -> tuple[str, VoicePrint]:
    """(model, print) of the one voice in a sample; refused when it holds several."""
    turns, prints = await client.diarize(wav, chunk=True)
    seconds = talk_seconds(turns)
    if not seconds or not prints:
        raise HTTPException(422, "no speech was found in the sample")
    ranked = sorted(seconds, key=seconds.__getitem__, reverse=True)
    total = sum(seconds.values())
    if len(ranked) > 1 and seconds[ranked[1]] >= OTHER_VOICE_SHARE * total:
        raise HTTPException(422, f"the sample holds {len(ranked)} voices; send a clip of "
                                 "one person speaking, or enroll from a finished job. Two "
                                 "recordings of one person joined in one file count as two "
                                 "voices (rooms and microphones change a voice): enroll the "
                                 "first, then add the second as another sample of that "
                                 "person (POST /api/speakers/ID/samples)")
    main = ranked[0]
    _enough(seconds[main], f"the sample has only {seconds[main]:.1f} s of speech")
    if main not in prints:
        raise HTTPException(422, "the speech server gave no voiceprint for the sample")
    return client.models.get("embedding", ""), VoicePrint(vector=prints[main],
                                                          seconds=round(seconds[main], 2))


def _enough(seconds: float, what: str) -> None:
    if seconds < MIN_ENROLL_S:
        raise HTTPException(422, f"{what}; a voiceprint needs at least {MIN_ENROLL_S:g} s "
                                 "of one person's speech")
