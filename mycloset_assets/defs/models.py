"""Per-role model assets: which checkpoint file fills each role of the try-on pipelines, proven by loading it.

Each asset (``pose_model``, ``parsing_model``, ``garment_mask_model``, ``gmm_model``, ``tom_model``, ...) reads
the analyses of every checkpoint file, chooses the file of its role (see
:func:`~mycloset_assets.defs.resources.choose_role`), loads it through the model factory and stores a JSON card:
the file, its sha256, the registry entry, the key-match rate and the load figures. Downstream assets pass the
card to ``ModelFactoryResource.load_card`` to get the very same network. The data version is the file's
sha256, so downstream results go stale exactly when the chosen file changes. When no file fills a role the
asset is not materialised and its ``key_match`` check fails with the reason.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ..monitoring import Monitor
from .checkpoints import canonical_checkpoint, checkpoint_analysis
from .checks import (
    ModelCheckConfig,
    card_metadata,
    key_match_result,
    load_cost_result,
    missing_role_results,
    model_check_specs,
)
from .io_managers import OpenFormatStorage, read_value
from .resources import ModelFactoryResource, choose_role, missing_role_message, role_candidates

ROLES = tuple(role_candidates())
MODEL_CARD = dg.PythonObjectDagsterType(dict, name="ModelCard", description="A per-role model card (JSON).")


def asset_name(role: str) -> str:
    """The model asset of a role: ``<role>_model``."""
    return f"{role}_model"


def _model_asset(role: str) -> dg.AssetsDefinition:
    name = asset_name(role)
    entries = ", ".join(role_candidates()[role])

    @dg.asset(
        name=name,
        group_name="models",
        kinds={"pytorch"},
        pool="gpu",
        ins={"checkpoint_analysis": dg.AssetIn(checkpoint_analysis.key, metadata={"allow_missing_partitions": True})},
        deps=[canonical_checkpoint],
        check_specs=model_check_specs(name),
        output_required=False,
        dagster_type=MODEL_CARD,
        description=f"The checkpoint file that fills the '{role}' role ({entries}), loaded once to prove it: "
        "a JSON card with the file, its sha256, the registry entry, the key-match rate and the load figures.",
    )
    def model_asset(
        context: dg.AssetExecutionContext,
        config: ModelCheckConfig,
        checkpoint_analysis: dict[str, dict[str, Any]],
        model_factory: ModelFactoryResource,
    ) -> Iterator[Any]:
        present = model_factory.files()
        reports = [report for key, report in checkpoint_analysis.items() if key in present]
        choice = choose_role(role, reports, model_factory.policy)
        if choice is None:
            message = missing_role_message(role, reports, model_factory.checkpoint_folder)
            context.log.warning(message)
            yield from missing_role_results(message, role)
            return
        card = choice.to_card()
        companions = {entry: item["path"] for entry, item in card["companions"].items()}
        with Monitor().step(f"load {name}") as measurement:
            loaded, cached = model_factory.load_file(card["path"], card["sha256"], companions)
        assert measurement.metrics is not None
        card.update(
            device=str(loaded.device),
            dtype=str(loaded.dtype).removeprefix("torch."),
            parameters=sum(parameter.numel() for parameter in loaded.module.parameters()),
            reinitialised=list(loaded.reinitialised),
            cached=cached,
            load=measurement.metrics.to_dict(),
        )
        context.log.info(f"{role}: {card['file']} ({card['entry']}, sha256 {card['sha256'][:12]})")
        yield dg.MaterializeResult(
            value=card,
            metadata=card_metadata(card),
            check_results=[key_match_result(card), load_cost_result(card, config)],
            data_version=dg.DataVersion(card["sha256"]),
        )

    return model_asset


MODEL_ASSETS: dict[str, dg.AssetsDefinition] = {role: _model_asset(role) for role in ROLES}
"""The model asset of every role, by role."""


def stored_cards(storage: dg.IOManager, roles: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The stored model cards of ``roles`` that are materialised (the others are left out)."""
    if not isinstance(storage, OpenFormatStorage):
        raise dg.Failure("the model cards are read through OpenFormatIOManager", allow_retries=False)
    cards = {}
    for role in roles:
        try:
            cards[role] = read_value(storage.stem(MODEL_ASSETS[role].key))
        except FileNotFoundError:
            continue
    return cards
