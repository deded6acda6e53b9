"""Naming detected speakers from the voice library: the rule (best person only, the
closer of two takes the name, the other is a likely split), the threshold's edge
(>= names, a hair under suggests), the suggestion band's edge, best-of-samples, and
each model's figures. Scores sit exactly at and around the thresholds, so moving
`>=` to `>`, dropping the mask of below-threshold pairs, or shifting a threshold by
0.03 fails here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.audio.pipeline import VoicePrint
from app.audio.stitching import unit
from app.speakers.matching import Known, assign
from app.speakers.thresholds import CAMPP, CAMPP_MODEL, GE2E, GE2E_MODEL, TITANET, scale_for


def at(degrees: float) -> list[float]:
    """A 2-d unit vector; the cosine of two of them is cos(angle between)."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def scored(score: float) -> list[float]:
    """A print whose cosine with at(0) is `score`, exactly for 0.6 (a 3-4-5 triangle)."""
    return [0.6, 0.8] if score == 0.6 else at(math.degrees(math.acos(score)))


def voice(vector: list[float], seconds: float = 30.0) -> VoicePrint:
    return VoicePrint(vector=list(unit(vector)), seconds=seconds)


def person(name: str, *samples: list[float]) -> Known:
    return Known(name.lower(), name, np.array([unit(s) for s in samples]))


ALICE = person("Alice", at(0))


def names(verdict) -> dict[str, str]:
    return {label: m.known.name for label, m in verdict.named.items()}


# -- the threshold's edge -----------------------------------------------------------------


@pytest.mark.parametrize("score, named", [(0.60, True), (0.6 + 1e-6, True), (0.6 - 1e-4, False),
                                          (0.63, True), (0.57, False)])
def test_a_score_at_the_threshold_names_and_a_hair_under_does_not(score, named):
    verdict = assign({"Speaker_0": voice(scored(score))}, [ALICE], threshold=0.6,
                     min_seconds=5, suggest_from=0.5)
    assert ("Speaker_0" in verdict.named) is named
    assert ("Speaker_0" in verdict.suggested) is (not named)  # in the band: a suggestion
    match = verdict.named.get("Speaker_0") or verdict.suggested["Speaker_0"]
    assert match.score == pytest.approx(score, abs=1e-4) and match.known.name == "Alice"


@pytest.mark.parametrize("score, suggested", [(0.6, True), (0.6 - 1e-4, False), (0.57, False),
                                              (0.63, True)])
def test_the_suggestion_band_has_an_edge_too(score, suggested):
    verdict = assign({"Speaker_0": voice(scored(score))}, [ALICE], 0.7, 5, suggest_from=0.6)
    assert verdict.named == {}
    assert ("Speaker_0" in verdict.suggested) is suggested


def test_without_a_band_nothing_under_the_threshold_comes_back():
    verdict = assign({"Speaker_0": voice(scored(0.59))}, [ALICE], 0.6, 5)
    assert verdict.named == {} and verdict.suggested == {}


def test_too_little_speech_is_neither_named_nor_suggested():
    verdict = assign({"Speaker_0": voice(at(0), seconds=4.9)}, [ALICE], 0.6, 5, 0.5)
    assert verdict.named == {} and verdict.suggested == {}


def test_prints_of_another_size_are_ignored():
    verdict = assign({"Speaker_0": voice([1, 0, 0])}, [ALICE], 0.5, 5, 0.4)
    assert verdict.named == {} and verdict.suggested == {}


# -- the rule -----------------------------------------------------------------------------


def test_a_speaker_is_only_ever_named_after_the_person_they_resemble_most():
    # Speaker_0 is Alice's (5 degrees) and also passes for Bob (15 degrees); Speaker_1
    # resembles Alice best (12 degrees). An assignment maximising the names would give
    # Speaker_0 Bob so that Speaker_1 could take Alice. Both resembling Alice best means
    # one person split in two: Speaker_0 is Alice, Speaker_1 a suggested merge, no Bob.
    detected = {"Speaker_0": voice(at(5)), "Speaker_1": voice(at(-12))}
    people = [ALICE, person("Bob", at(20))]
    verdict = assign(detected, people, threshold=math.cos(math.radians(18)), min_seconds=5,
                     suggest_from=0.5)
    assert names(verdict) == {"Speaker_0": "Alice"}
    split = verdict.suggested["Speaker_1"]
    assert (split.known.name, split.same_as) == ("Alice", "Speaker_0")
    assert split.score == pytest.approx(math.cos(math.radians(12)), abs=1e-4)


def test_of_two_speakers_resembling_one_person_the_closer_gets_the_name():
    detected = {"Speaker_0": voice(at(8)), "Speaker_1": voice(at(2))}
    verdict = assign(detected, [ALICE], 0.9, 5, 0.8)
    assert names(verdict) == {"Speaker_1": "Alice"}  # not the first label
    assert verdict.suggested["Speaker_0"].same_as == "Speaker_1"


def test_a_near_miss_on_a_person_named_elsewhere_is_a_likely_split():
    detected = {"Speaker_0": voice(at(0)), "Speaker_1": voice(scored(0.55))}
    verdict = assign(detected, [ALICE], 0.6, 5, 0.5)
    assert names(verdict) == {"Speaker_0": "Alice"}
    assert verdict.suggested["Speaker_1"].same_as == "Speaker_0"


def test_different_people_are_each_named():
    detected = {"Speaker_0": voice(at(3)), "Speaker_1": voice(at(88)), "Speaker_2": voice(at(45))}
    verdict = assign(detected, [ALICE, person("Bob", at(90))], 0.95, 5, 0.9)
    assert names(verdict) == {"Speaker_0": "Alice", "Speaker_1": "Bob"}
    assert verdict.suggested == {}  # Speaker_2 is 45 degrees from both: nobody


def test_a_person_is_scored_by_the_closest_of_their_samples():
    # Two rooms: the mean of the two samples (at 30) is 30 degrees from either room.
    carol = person("Carol", at(0), at(60))
    verdict = assign({"Speaker_0": voice(at(58))}, [carol], 0.99, 5, 0.9)
    assert names(verdict) == {"Speaker_0": "Carol"}
    assert verdict.named["Speaker_0"].score == pytest.approx(math.cos(math.radians(2)), abs=1e-4)


# -- each model's figures -------------------------------------------------------------------


def test_each_model_has_its_own_figures():
    assert scale_for(CAMPP_MODEL) == CAMPP and scale_for(GE2E_MODEL) == GE2E
    assert scale_for("nvidia/speakerverification_en_titanet_large") == TITANET
    assert scale_for("/models/titanet-small.nemo") == TITANET
    assert TITANET.match == 0.4 and not TITANET.measured  # NeMo's documented point
    assert CAMPP.measured
    assert scale_for("some/ecapa") is None
    for scale in (CAMPP, GE2E, TITANET):
        assert scale.suggest < scale.match and scale.different_voice < scale.same_voice


def test_an_override_moves_the_threshold_and_keeps_the_band_width():
    moved = scale_for(CAMPP_MODEL, 0.7)
    assert moved.match == 0.7
    assert moved.match - moved.suggest == pytest.approx(CAMPP.match - CAMPP.suggest)
    assert scale_for("some/ecapa", 0.6).match == 0.6
