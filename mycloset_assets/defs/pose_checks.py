"""Which pose estimator the ``pose`` asset runs, and the check that compares the two where both are present.

The estimators are OpenPose (``pose_model``'s card when OpenPose fills it) and BlazePose (``blazepose_model``'s
card, or ``pose_model``'s when OpenPose is absent). The run configuration's ``pose_estimator`` chooses the one
whose keypoints are stored (``auto``: the one ``pose_model`` names). When both are present the other one runs
too and ``estimators_agree`` compares the chosen person's OpenPose-18 keypoints of the two per photo:
PCK@alpha of the bounding box (:mod:`mycloset_assets.vision.pose_agreement`), WARN below ``min_agreement``.
With one estimator the check is a WARN saying it was not computed, never a pass.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ..checkpoints.pipelines import pose_estimator_of
from ..vision.pose_agreement import Agreement
from .image_checks import StepFigures

AGREEMENT_CHECK = "estimators_agree"
Card = Mapping[str, Any]


def agreement_spec(asset: str) -> dg.AssetCheckSpec:
    """The ``estimators_agree`` check of ``asset``."""
    return dg.AssetCheckSpec(
        AGREEMENT_CHECK,
        asset=asset,
        description="Where OpenPose and BlazePose are both present: the share of the OpenPose-18 keypoints both "
        "found that lie within agreement_alpha x the longer side of their bounding box (PCK) is at least "
        "min_agreement on every photo (WARN otherwise, and WARN 'not computed' with one estimator).",
    )


def estimator_cards(pose_card: Card, blazepose_card: Card | None) -> dict[str, Card]:
    """The model card of each present estimator by name (``openpose``, ``blazepose``), ``pose_model``'s first."""
    cards = {pose_estimator_of(pose_card["entry"]): pose_card}
    if blazepose_card is not None:
        cards.setdefault("blazepose", blazepose_card)
    return cards


def chosen_estimator(option: str, cards: Mapping[str, Card]) -> str:
    """The estimator the ``pose_estimator`` option names among those present (``auto``: ``pose_model``'s)."""
    chosen = next(iter(cards)) if option == "auto" else option
    if chosen not in cards:
        present = " and ".join(cards)
        raise dg.Failure(
            f"pose_estimator is {option!r} but only {present} is present: add its checkpoint files (for BlazePose "
            "`mycloset fetch mediapipe DIR`) and materialise pose_model and blazepose_model, or set pose_estimator "
            "to auto",
            allow_retries=False,
        )
    return chosen


def agreement_result(
    agreements: Mapping[str, Agreement],
    estimators: tuple[str, str | None],
    figures: StepFigures,
    min_agreement: float,
    alpha: float,
) -> dg.AssetCheckResult:
    """WARN when a photo's PCK is below ``min_agreement`` or cannot be computed; WARN 'not computed' with one
    estimator. ``estimators``: the one used and the one compared (None when absent)."""
    used, other = estimators
    metadata: dict[str, Any] = {
        **figures.metadata(),
        "estimator": used,
        "compared_with": other or "",
        "alpha": alpha,
        "min_agreement": min_agreement,
    }
    if other is None:
        return dg.AssetCheckResult(
            check_name=AGREEMENT_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not computed: only {used} is present (a second estimator's files compare the two)",
            metadata=metadata,
        )
    scored = {key: item.pck for key, item in agreements.items() if item.pck is not None}
    low = [f"{key}: PCK {value:.2f}" for key, value in scored.items() if value < min_agreement]
    unshared = [f"{key}: no keypoint found by both" for key, item in agreements.items() if item.pck is None]
    shared = sum(item.shared for item in agreements.values())
    agreeing = sum(item.agreeing for item in agreements.values())
    if shared:
        metadata["pck"] = round(agreeing / shared, 4)
    if scored:
        metadata["lowest_pck"] = round(min(scored.values()), 4)
    metadata.update(shared_keypoints=shared, agreeing_keypoints=agreeing)
    problems = low + unshared
    summary = f"{used} vs {other}: {agreeing} of {shared} shared keypoints agree (PCK@{alpha:g} of the box)"
    return dg.AssetCheckResult(
        check_name=AGREEMENT_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{summary}; {'; '.join(problems)}" if problems else summary,
        metadata=metadata,
    )
