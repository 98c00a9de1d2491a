"""The nightly batch is Dagster's own declarative automation: evaluated with ``evaluate_automation_conditions`` on
a real ephemeral instance, as the automation sensor does."""

import datetime

import dagster as dg

from mycloset_assets.definitions import defs
from mycloset_assets.defs.automation import NIGHTLY_CRON
from mycloset_assets.defs.partitions import pair_key

UTC = datetime.UTC
BEFORE = datetime.datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
AFTER = datetime.datetime(2026, 12, 3, 2, 1, tzinfo=UTC)
NEXT_DAY = datetime.datetime(2026, 12, 4, 2, 1, tzinfo=UTC)


def report(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


def requested(result, asset: str) -> set[str]:
    return {str(key) for key in result.get_requested_partitions(dg.AssetKey(asset))}


def test_at_the_cron_tick_missing_and_stale_photos_run_and_only_stale_requested_pairs():
    assert NIGHTLY_CRON == "0 2 * * *"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("person_images", ["ann-1", "bob-2"])
        instance.add_dynamic_partitions("garment_images", ["shirt-3"])
        for model in ("pose_model", "parsing_model", "gmm_model", "tom_model", "garment_mask_model"):
            report(instance, model)
        for person in ("ann-1", "bob-2"):
            report(instance, "person_image", person)
        report(instance, "pose", "ann-1")
        ann_shirt = str(pair_key("ann-1", "shirt-3"))
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=BEFORE)
        assert quiet.total_requested == 0, "nothing runs before the tick"

        report(instance, "pose_model")  # another checkpoint now fills the pose role: every pose is stale
        nightly = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=AFTER, cursor=quiet.cursor
        )
        assert requested(nightly, "pose") == {"ann-1", "bob-2"}, "stale ann and missing bob"
        assert requested(nightly, "human_parsing") == {"ann-1", "bob-2"}
        assert requested(nightly, "garment_image") == {"shirt-3"}, "a photo the sensor's run missed"
        assert requested(nightly, "garment_mask") == {"shirt-3"}, "runs after its photo in the same batch"
        for pair_asset in ("warped_garment", "tryon_result", "vitonhd_result", "quality_report"):
            assert requested(nightly, pair_asset) == set(), "pairs nobody asked for are never filled in"

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("person_images", ["ann-1"])
        instance.add_dynamic_partitions("garment_images", ["shirt-3"])
        for asset in ("person_image", "pose", "human_parsing"):
            report(instance, asset, "ann-1")
        for asset in ("garment_image", "refined_garment_mask"):
            report(instance, asset, "shirt-3")
        report(instance, "gmm_model")
        report(instance, "warped_garment", ann_shirt)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=BEFORE)
        report(instance, "gmm_model")
        night = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=AFTER, cursor=first.cursor
        )
        assert requested(night, "warped_garment") == {ann_shirt}, "a requested pair whose model changed re-runs"
        later = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=NEXT_DAY, cursor=night.cursor
        )
        assert requested(later, "warped_garment") == set(), "handled: not again the next night"
