"""A transcription result with its speakers named from the voice library.

Names are put in when a result is served, not when it is made: a rename or a
deletion in the library shows in every stored result at once, and a speaker
enrolled from a job is named in that job's result straight away.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from ..audio.pipeline import SpeakerName, SpeakersResult, Suggestion, Voices
from .library import VoiceLibrary
from .matching import Match, Verdict, assign
from .thresholds import MIN_MATCH_S, scale_for

_NAME = re.compile(r"[^\W_][\w .'’()-]*")
MAX_NAME = 64


def clean_name(value: str) -> str:
    """A person's name as stored: spaces collapsed; refused when it could be mistaken
    for a label or break a subtitle or RTTM file."""
    name = " ".join(value.split())
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"a name is 1 to {MAX_NAME} characters")
    if not _NAME.fullmatch(name):
        raise ValueError("a name holds letters, digits, spaces and . ' - _ ( ) only, "
                         "and starts with a letter or digit")
    if name.lower().startswith("speaker_"):
        raise ValueError("'Speaker_…' is how unnamed speakers are labelled; choose another name")
    return name


PersonName = Annotated[str, AfterValidator(clean_name)]


async def named(result: SpeakersResult, voices: Voices, library: VoiceLibrary,
                threshold_override: float | None = None) -> SpeakersResult:
    """The result with matched speakers' labels replaced by names, and `speakers`
    saying which label each name replaced and with what score, or which person a
    speaker under the threshold resembles (`suggested`)."""
    verdict = await _verdict(voices, library, threshold_override)
    labels = list(dict.fromkeys([s.speaker for s in result.segments] + list(voices.prints)))
    speakers = [_entry(label, verdict) for label in labels]
    names = {label: m.known.name for label, m in verdict.named.items()}
    segments = [s.model_copy(update={"speaker": names.get(s.speaker, s.speaker)})
                for s in result.segments]
    return result.model_copy(update={"segments": segments, "speakers": speakers})


async def _verdict(voices: Voices, library: VoiceLibrary,
                   threshold_override: float | None) -> Verdict:
    scale = scale_for(voices.model, threshold_override)
    if scale is None or not voices.prints:
        return Verdict()
    return assign(voices.prints, await library.known(voices.model), scale.match,
                  MIN_MATCH_S, scale.suggest)


def _entry(label: str, verdict: Verdict) -> SpeakerName:
    match: Match | None = verdict.named.get(label)
    if match is not None:
        return SpeakerName(label=label, name=match.known.name, score=match.score)
    near = verdict.suggested.get(label)
    if near is None:
        return SpeakerName(label=label)
    return SpeakerName(label=label, suggested=Suggestion(name=near.known.name, score=near.score,
                                                         same_as=near.same_as))
