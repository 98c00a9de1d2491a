"""Per-role model assets: which checkpoint file fills each role of the try-on pipelines, proven by loading it.

The graph runs both pipelines side by side, so its model slots name the pipeline where the roles differ:
``pose_model``, ``parsing_model``, ``garment_mask_model`` (shared), ``gmm_model`` and ``tom_model`` (CP-VTON),
``vitonhd_seg_model``, ``vitonhd_gmm_model``, ``vitonhd_alias_model`` (VITON-HD), and the optional steps'
``mask_refinement_model``, ``face_restoration_model``, ``lpips_model``, ``clip_model``; ``blazepose_model`` is
BlazePose's files whatever fills ``pose_model`` (OpenPose when present), so that the pose step can run the
estimator the run configuration names and compare the two. Which entries may fill a slot is the engine's role
table (:mod:`mycloset_assets.checkpoints.pipelines`) and which file fills it the engine's choice
(:meth:`ModelSet.optional`-style: first acceptable entry present with its companions and partners). A card names
the partner files too (BlazePose's person detector, under ``partners``), each a card the factory loads. The
``blazepose``, ``person_mask`` and ``face_detection`` cards are read where materialised (``stored_cards``) and are
not declared as dependencies, so that their absence never holds back the nightly automation.

Each asset loads the chosen file through the model factory and stores a JSON card: the file, its sha256, the
registry entry, the key-match rate and the load figures. Downstream assets pass the card to the factory to get
the very same network. The data version is the file's sha256, so downstream results go stale exactly when the
chosen file changes. When no file fills a slot the asset is not materialised and its ``key_match`` check says
why (WARN: that pipeline or step simply does not run); a file that is chosen but not cleanly matched is an ERROR.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ..checkpoints.pipelines import (
    OPTIONAL_ROLES,
    PIPELINES,
    POSE_ESTIMATORS,
    choose,
    missing_companions,
    partner_roles,
    required_companions,
)
from ..engine.models import Checkpoint, ModelSet, file_analysis
from ..monitoring import Monitor
from .checkpoints import checkpoint_analysis
from .checks import (
    ModelCheckConfig,
    card_metadata,
    key_match_result,
    load_cost_result,
    missing_role_results,
    model_check_specs,
)
from .deployment import GPU_OP_TAGS, GPU_POOL
from .io_managers import OpenFormatStorage, read_value
from .resources import ModelFactoryResource

MODEL_CARD = dg.PythonObjectDagsterType(dict, name="ModelCard", description="A per-role model card (JSON).")


@dataclass(frozen=True)
class Slot:
    """One model asset: the ``role`` of the engine's tables it fills, for ``pipeline`` (None: any), or only
    with one pose ``estimator``'s entries (a slot no pipeline needs)."""

    role: str
    pipeline: str | None = None
    estimator: str | None = None

    @property
    def entries(self) -> tuple[str, ...]:
        """The registry entries that may fill the slot, in order of preference."""
        if self.estimator is not None:
            return POSE_ESTIMATORS[self.estimator]
        if self.pipeline is not None:
            return PIPELINES[self.pipeline][self.role]
        if self.role in OPTIONAL_ROLES:
            return OPTIONAL_ROLES[self.role]
        return next(roles[self.role] for roles in PIPELINES.values() if self.role in roles)


SLOTS: dict[str, Slot] = {
    "pose": Slot("pose"),
    "parsing": Slot("parsing"),
    "garment_mask": Slot("garment_mask"),
    "gmm": Slot("gmm", "cpvton"),
    "tom": Slot("tom", "cpvton"),
    "vitonhd_seg": Slot("seg", "vitonhd"),
    "vitonhd_gmm": Slot("gmm", "vitonhd"),
    "vitonhd_alias": Slot("alias", "vitonhd"),
    **{role: Slot(role) for role in OPTIONAL_ROLES},
    "blazepose": Slot("pose", estimator="blazepose"),
}
"""Model asset name (less ``_model``) -> the role it fills."""

PIPELINE_SLOTS: dict[str, tuple[str, ...]] = {
    pipeline: tuple(
        name
        for name, slot in SLOTS.items()
        if slot.pipeline in (None, pipeline) and slot.role in roles and slot.estimator is None
    )
    for pipeline, roles in PIPELINES.items()
}
"""The slots each pipeline needs, shared ones included."""


def asset_name(slot: str) -> str:
    """The model asset of a slot: ``<slot>_model``."""
    return f"{slot}_model"


def model_card(slot: str, models: ModelSet, folder: str) -> dict[str, Any] | None:
    """The card of the file that fills ``slot`` among ``models`` (None when none does): file, sha256, entry,
    family, the analysis figures and the companion files."""
    entry = choose(SLOTS[slot].entries, models.checkpoints)
    if entry is None:
        return None
    checkpoint = models.checkpoints[entry]
    report = file_analysis(checkpoint.path)
    companions = {name: models.checkpoints[name] for name in required_companions(entry)}
    return {
        "role": slot,
        "entry": entry,
        "family": report.family,
        "pipeline": SLOTS[slot].pipeline,
        "file": checkpoint.path.relative_to(folder).as_posix(),
        "path": str(checkpoint.path.resolve()),
        "sha256": checkpoint.sha256,
        "size": checkpoint.path.stat().st_size,
        "verdict": report.verdict,
        "match_rate": report.match_rate,
        "matched": report.matched,
        "total": report.total,
        "container": report.container,
        "reason": report.reason,
        "policy": checkpoint.policy,
        "companions": {name: _file_card(item, folder) for name, item in companions.items()},
        "partners": {
            role: {"role": role, "entry": partner, **_file_card(models.checkpoints[partner], folder)}
            for role, partner in partner_roles(entry).items()
        },
    }


def _file_card(checkpoint: Checkpoint, folder: str) -> dict[str, str]:
    path = checkpoint.path
    return {"file": path.relative_to(folder).as_posix(), "path": str(path.resolve()), "sha256": checkpoint.sha256}


def missing_slot_message(slot: str, models: ModelSet) -> str:
    """Why no file fills ``slot``: the entries that would, and the files the folder could not use."""
    entries = SLOTS[slot].entries
    message = f"no file in {models.source} fills '{slot}': it needs {' or '.join(entries)}"
    if SLOTS[slot].pipeline:
        message += f" ({SLOTS[slot].pipeline} does not run without it)"
    for entry in entries:
        lacking = missing_companions(entry, models.checkpoints) if entry in models.checkpoints else ()
        if lacking:
            message += f"; {models.checkpoints[entry].shown} ({entry}) needs {' and '.join(lacking)} beside it"
    skipped = "; ".join(f"{path} ({reason})" for path, reason in list(models.skipped.items())[:5])
    return message + (f"; skipped: {skipped}" if skipped else "")


def _model_asset(slot: str) -> dg.AssetsDefinition:
    name = asset_name(slot)
    entries = ", ".join(SLOTS[slot].entries)

    @dg.asset(
        name=name,
        group_name="models",
        kinds={"pytorch"},
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        deps=[checkpoint_analysis],
        check_specs=model_check_specs(name),
        output_required=False,
        dagster_type=MODEL_CARD,
        description=f"The checkpoint file that fills '{slot}' ({entries}), loaded once to prove it: a JSON card "
        "with the file, its sha256, the registry entry, the key-match rate and the load figures.",
    )
    def model_asset(
        context: dg.AssetExecutionContext, config: ModelCheckConfig, model_factory: ModelFactoryResource
    ) -> Iterator[Any]:
        models = model_factory.models()
        card = model_card(slot, models, model_factory.checkpoint_folder)
        if card is None:
            message = missing_slot_message(slot, models)
            context.log.info(message)
            yield from missing_role_results(message, slot)
            return
        with Monitor().step(f"load {name}") as measurement:
            loaded, cached = model_factory.load(card)
        assert measurement.metrics is not None
        card.update(
            device=str(loaded.device),
            dtype=str(loaded.dtype).removeprefix("torch."),
            parameters=sum(parameter.numel() for parameter in loaded.module.parameters()),
            reinitialised=list(loaded.reinitialised),
            cached=cached,
            load=measurement.metrics.to_dict(),
        )
        context.log.info(f"{slot}: {card['file']} ({card['entry']}, sha256 {card['sha256'][:12]})")
        yield dg.MaterializeResult(
            value=card,
            metadata=card_metadata(card),
            check_results=[key_match_result(card), load_cost_result(card, config)],
            data_version=dg.DataVersion(card["sha256"]),
        )

    return model_asset


MODEL_ASSETS: dict[str, dg.AssetsDefinition] = {slot: _model_asset(slot) for slot in SLOTS}
"""The model asset of every slot, by slot."""


def stored_cards(storage: dg.IOManager, slots: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The stored model cards of ``slots`` that are materialised (the others are left out)."""
    if not isinstance(storage, OpenFormatStorage):
        raise dg.Failure("the model cards are read through OpenFormatIOManager", allow_retries=False)
    cards = {}
    for slot in slots:
        try:
            cards[slot] = read_value(storage.stem(MODEL_ASSETS[slot].key))
        except FileNotFoundError:
            continue
    return cards


def complete_pipelines(cards: Mapping[str, Any]) -> list[str]:
    """The pipelines every slot of which has a card, in the engine's order."""
    return [pipeline for pipeline, slots in PIPELINE_SLOTS.items() if all(slot in cards for slot in slots)]
