"""The nightly batch as Dagster's declarative automation: at the cron tick, every per-photo partition that is
missing or whose parents were updated since it was last handled, and every requested try-on pair whose
parents were, is materialised.

A parent update is a new model card (another checkpoint file fills the role) or a re-run upstream step. Pairs
are never filled in by this condition: a pair partition that was never materialised was never asked for (see
:mod:`.partitions`), so pairs run when the pairs sensor requests them and re-run at night when stale. Work whose
parents are missing or in progress waits. Dagster's automation sensor evaluates the conditions and groups the
partitions of an asset into runs by its backfill policy (one run per asset and night: models load once).
"""

import dagster as dg

NIGHTLY_CRON = "0 2 * * *"


def _stale() -> dg.AutomationCondition:
    return dg.AutomationCondition.any_deps_updated().since_last_handled()


def _ready() -> dg.AutomationCondition:
    return (
        ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )


def nightly_photo_condition(cron: str = NIGHTLY_CRON) -> dg.AutomationCondition:
    """Per-photo assets: at the cron tick, the missing and the stale partitions whose parents are all there."""
    tick = dg.AutomationCondition.cron_tick_passed(cron)
    return (tick & (dg.AutomationCondition.missing() | _stale()) & _ready()).with_label(f"nightly ({cron})")


def nightly_pair_condition(cron: str = NIGHTLY_CRON) -> dg.AutomationCondition:
    """Pair assets: at the cron tick, the materialised pairs that are stale (never the pairs nobody asked for)."""
    tick = dg.AutomationCondition.cron_tick_passed(cron)
    return (tick & ~dg.AutomationCondition.missing() & _stale() & _ready()).with_label(f"nightly ({cron})")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "nightly_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions (the nightly batch of missing and stale work).",
)
