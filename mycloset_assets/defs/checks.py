"""Asset checks of the per-role model assets: every tensor matched (ERROR) and the load cost (WARN).

The checks are declared on the model assets (``check_specs``) and evaluated in the same step, from the card
the asset writes: the chosen file's sha256, entry, key-match rate, and the wall time, CPU time and peak RSS
(device memory on a GPU) of loading it, measured by :mod:`mycloset_assets.monitoring`.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

KEY_MATCH_CHECK = "key_match"
LOAD_COST_CHECK = "load_cost"
LOAD_FIGURES = ("seconds", "cpu_seconds", "peak_rss_mb", "device_peak_mb")


class ModelCheckConfig(dg.Config):
    """Thresholds of the load-cost check (going over one is a WARN)."""

    max_load_seconds: float = Field(default=60.0, description="Wall time allowed to load the network.")
    max_load_peak_rss_mb: float = Field(default=16384.0, description="Peak process RSS (MiB) allowed while loading.")


def model_check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    """The checks of one model asset."""
    return [
        dg.AssetCheckSpec(
            KEY_MATCH_CHECK,
            asset=asset_name,
            description="Every tensor of the network came from the chosen file (key-match rate 1.0, verdict "
            "identified, nothing re-initialised); ERROR otherwise. WARN when no file fills the role (its pipeline "
            "or step does not run).",
        ),
        dg.AssetCheckSpec(
            LOAD_COST_CHECK,
            asset=asset_name,
            description="Loading the network stayed within the configured wall-time and peak-RSS limits; else WARN.",
        ),
    ]


def card_metadata(card: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metadata of a model card: identity of the file, key match, and the load figures."""
    metadata = {key: card[key] for key in ("role", "entry", "family", "file", "sha256", "verdict", "match_rate")}
    metadata.update(pipeline=card["pipeline"] or "", device=card["device"], dtype=card["dtype"], cached=card["cached"])
    load = card["load"]
    metadata.update({figure: round(load[figure], 4) for figure in LOAD_FIGURES if load.get(figure) is not None})
    return metadata


def card_problems(card: Mapping[str, Any]) -> list[str]:
    """What keeps a model card from a clean key match: verdict, key-match rate, re-initialised modules."""
    problems = []
    if card["verdict"] != "identified":
        problems.append(f"verdict {card['verdict']}")
    if card["match_rate"] < 1.0:
        problems.append(f"key-match rate {card['match_rate']:.4f} ({card['matched']}/{card['total']} tensors)")
    if card.get("reinitialised"):
        problems.append(f"re-initialised {', '.join(card['reinitialised'])}")
    return problems


def key_match_result(card: Mapping[str, Any]) -> dg.AssetCheckResult:
    """ERROR unless the file is identified with key-match rate 1.0 and nothing was re-initialised."""
    problems = card_problems(card)
    summary = f"{card['file']} is {card['entry']} ({card['reason']})"
    return dg.AssetCheckResult(
        check_name=KEY_MATCH_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary if not problems else f"{summary}: {'; '.join(problems)}",
        metadata=card_metadata(card),
    )


def load_cost_result(card: Mapping[str, Any], config: ModelCheckConfig) -> dg.AssetCheckResult:
    """WARN when loading took longer or more memory than the thresholds."""
    load = card["load"]
    over = []
    if load["seconds"] > config.max_load_seconds:
        over.append(f"{load['seconds']:.2f} s > {config.max_load_seconds:g} s")
    if load["peak_rss_mb"] > config.max_load_peak_rss_mb:
        over.append(f"peak RSS {load['peak_rss_mb']:.0f} MiB > {config.max_load_peak_rss_mb:g} MiB")
    cached = " (already loaded in this process)" if card["cached"] else ""
    return dg.AssetCheckResult(
        check_name=LOAD_COST_CHECK,
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"loading took {'; '.join(over) if over else 'less than the limits'}{cached}",
        metadata={
            **card_metadata(card),
            "max_load_seconds": config.max_load_seconds,
            "max_load_peak_rss_mb": config.max_load_peak_rss_mb,
        },
    )


def missing_role_results(message: str, role: str) -> list[dg.AssetCheckResult]:
    """Both checks when no file fills the role, failing as WARN with the reason: nothing was matched or loaded, and
    nothing is wrong with a file (the pipeline or step that needs the role does not run)."""
    metadata = {"role": role, "reason": message}
    return [
        dg.AssetCheckResult(
            check_name=KEY_MATCH_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=message,
            metadata=metadata,
        ),
        dg.AssetCheckResult(
            check_name=LOAD_COST_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"nothing was loaded: {message}",
            metadata=metadata,
        ),
    ]
