"""Which checkpoints each try-on pipeline needs, as data, and which pipelines a set of checkpoints completes.

``PIPELINES`` maps a pipeline to its roles and, for each role, the registry entries that can fill it in order of
preference. ``OPTIONAL_ROLES`` are the post-processing and quality models any pipeline may use, and
``OPTIONAL_STEPS`` the roles each optional step reads (a step runs when its roles are filled; the quality report
runs always, its LPIPS and CLIP figures only with their checkpoints). An entry fills
a role only when its companions (registry ``keys.requires``, e.g. an LPIPS lin file's AlexNet trunk) are
available too, and its partners (``PARTNERS``: a second network with its own file and role, e.g. BlazePose's
person detector beside its landmark network). The model manager's ``deps`` and the engine's model selection both
read these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .registry import get_entry

POSE_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "openpose": ("openpose_body_coco18",),
    "blazepose": ("mediapipe_pose_landmark_full",),
}
"""The pose role's entries by estimator (the ``pose_estimator`` option's values besides ``auto``)."""
POSE = POSE_ESTIMATORS["openpose"] + POSE_ESTIMATORS["blazepose"]
PARSING = ("schp_lip20", "graphonomy_cihp20")
GARMENT_MASK = ("u2net_cloth_seg4", "u2net", "u2netp")

PIPELINES: dict[str, dict[str, tuple[str, ...]]] = {
    "cpvton": {
        "pose": POSE,
        "parsing": PARSING,
        "garment_mask": GARMENT_MASK,
        "gmm": ("cpvton_gmm",),
        "tom": ("cpvton_tom",),
    },
    "vitonhd": {
        "pose": POSE,
        "parsing": PARSING,
        "garment_mask": GARMENT_MASK,
        "seg": ("vitonhd_seg",),
        "gmm": ("vitonhd_gmm",),
        "alias": ("vitonhd_alias",),
    },
}

OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {
    "face_restoration": ("gfpgan_v1_4",),
    "mask_refinement": ("sam_vit_h", "sam_vit_l", "sam_vit_b", "mobile_sam"),
    "lpips": ("lpips_alex_lin", "lpips_vgg_lin"),
    "clip": ("clip_vit_b32",),
    "person_mask": ("mediapipe_selfie_segmentation",),
    "face_detection": ("mediapipe_face_detection_short_range",),
}

OPTIONAL_STEPS: dict[str, tuple[str, ...]] = {
    "mask_refinement": ("mask_refinement",),
    "face_restoration": ("face_restoration",),
    "quality": ("lpips", "clip"),
    "person_mask": ("person_mask",),
}

PARTNERS: dict[str, dict[str, str]] = {
    "mediapipe_pose_landmark_full": {"pose_detector": "mediapipe_pose_detection"},
}
"""Entry -> the roles and entries of the separate networks it runs with (each loaded from its own file)."""

STEP_HELPERS: dict[str, tuple[str, ...]] = {"face_restoration": ("face_detection",)}
"""Optional roles a step uses when an entry fills them and runs without otherwise (BlazeFace's eyes and nose
align the face GFPGAN restores; the pose's do when no face detector is present)."""

PREFERENCE = ("vitonhd", "cpvton")


@dataclass(frozen=True)
class PipelineStatus:
    """Whether one pipeline can run on the available entries: the entry chosen for each role, what is missing."""

    pipeline: str
    roles: dict[str, str]
    missing: dict[str, tuple[str, ...]]
    optional: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every required role has an entry."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: pipeline, complete, roles, missing (role -> acceptable entries), optional."""
        return {
            "pipeline": self.pipeline,
            "complete": self.complete,
            "roles": dict(self.roles),
            "missing": {role: list(entries) for role, entries in self.missing.items()},
            "optional": dict(self.optional),
        }


@dataclass(frozen=True)
class StepStatus:
    """Which entries an optional step would use (``roles``) and which of its roles no entry fills."""

    step: str
    roles: dict[str, str]
    missing: dict[str, tuple[str, ...]]

    @property
    def complete(self) -> bool:
        """True when every role of the step has an entry."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: step, complete, roles, missing (role -> acceptable entries)."""
        return {
            "step": self.step,
            "complete": self.complete,
            "roles": dict(self.roles),
            "missing": {role: list(entries) for role, entries in self.missing.items()},
        }


def required_companions(entry_id: str) -> tuple[str, ...]:
    """The registry entries whose files ``entry_id`` needs beside its own (``keys.requires``)."""
    return tuple(companion.entry for companion in get_entry(entry_id).keys.requires)


def partner_roles(entry_id: str) -> dict[str, str]:
    """Role -> entry of the separate networks ``entry_id`` runs with (``PARTNERS``; empty for most entries)."""
    return dict(PARTNERS.get(entry_id, {}))


def pose_estimator_of(entry_id: str) -> str:
    """The estimator (``POSE_ESTIMATORS`` key) of a pose entry."""
    return next(name for name, entries in POSE_ESTIMATORS.items() if entry_id in entries)


def missing_companions(entry_id: str, available: Iterable[str]) -> tuple[str, ...]:
    """The companions and partners of ``entry_id`` that are not among ``available``."""
    present = set(available)
    needed = (*required_companions(entry_id), *partner_roles(entry_id).values())
    return tuple(companion for companion in needed if companion not in present)


def with_partners(entry_id: str) -> str:
    """An entry as messages name it: ``"mediapipe_pose_landmark_full + mediapipe_pose_detection"``."""
    return " + ".join((entry_id, *partner_roles(entry_id).values()))


def choose(acceptable: Iterable[str], available: Iterable[str]) -> str | None:
    """The first acceptable entry that is available with all its companions, or None."""
    present = set(available)
    for entry_id in acceptable:
        if entry_id in present and not missing_companions(entry_id, present):
            return entry_id
    return None


def pipeline_status(
    pipeline: str, available: Iterable[str], narrowed: Mapping[str, tuple[str, ...]] | None = None
) -> PipelineStatus:
    """Which entry fills each role of ``pipeline`` from ``available`` entry ids, and which roles stay empty;
    ``narrowed`` replaces the acceptable entries of some roles (``{"pose": POSE_ESTIMATORS["blazepose"]}``)."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
    present = set(available)
    roles: dict[str, str] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for role, default in PIPELINES[pipeline].items():
        acceptable = (narrowed or {}).get(role, default)
        chosen = choose(acceptable, present)
        if chosen is None:
            missing[role] = acceptable
        else:
            roles[role] = chosen
    optional = {role: chosen for role, acceptable in OPTIONAL_ROLES.items() if (chosen := choose(acceptable, present))}
    return PipelineStatus(pipeline, roles, missing, optional)


def pipeline_statuses(available: Iterable[str]) -> dict[str, PipelineStatus]:
    """``pipeline_status`` of every pipeline, in order of preference."""
    present = set(available)
    return {pipeline: pipeline_status(pipeline, present) for pipeline in PREFERENCE}


def best_pipeline(available: Iterable[str]) -> str | None:
    """The preferred pipeline whose required roles ``available`` all fill, or None when none is complete."""
    statuses = pipeline_statuses(available)
    return next((name for name, status in statuses.items() if status.complete), None)


def step_statuses(available: Iterable[str]) -> dict[str, StepStatus]:
    """For each optional step, the entries ``available`` fills its roles with and the roles left empty."""
    present = set(available)
    statuses = {}
    for step, roles in OPTIONAL_STEPS.items():
        chosen = {role: choose(OPTIONAL_ROLES[role], present) for role in roles}
        statuses[step] = StepStatus(
            step,
            {role: entry for role, entry in chosen.items() if entry is not None},
            {role: OPTIONAL_ROLES[role] for role, entry in chosen.items() if entry is None},
        )
    return statuses


def absent_optional(role: str) -> str:
    """Why an optional role is empty: ``"no ROLE checkpoint is available (ENTRY or ENTRY)"``."""
    return f"no {role} checkpoint is available ({' or '.join(OPTIONAL_ROLES[role])})"


def roles_of(entry_id: str) -> list[tuple[str, str]]:
    """Every (pipeline, role) an entry can fill; optional roles are reported with pipeline ``"*"``."""
    found = [
        (pipeline, role) for pipeline, roles in PIPELINES.items() for role, ids in roles.items() if entry_id in ids
    ]
    found += [("*", role) for role, ids in OPTIONAL_ROLES.items() if entry_id in ids]
    found += [
        ("*", role) for partners in PARTNERS.values() for role, partner in partners.items() if partner == entry_id
    ]
    return found


def describe_missing(status: PipelineStatus) -> str:
    """One sentence naming the empty roles of a pipeline and the entries that would fill them."""
    if status.complete:
        return f"{status.pipeline}: complete"
    parts = [f"{role} ({' or '.join(map(with_partners, entries))})" for role, entries in status.missing.items()]
    return f"{status.pipeline} needs {', '.join(parts)}"
