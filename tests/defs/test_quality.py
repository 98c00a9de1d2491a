"""The quality checks' verdicts from figures: thresholds, doubtful pairs, figures a pair could not get."""

import dagster as dg
import pytest

from mycloset_assets.defs.image_checks import StepFigures
from mycloset_assets.defs.quality import THRESHOLDS, QualityConfig, figure_check, quality_check_specs
from mycloset_assets.engine.quality import METRICS, QualityFigures
from mycloset_assets.monitoring import Monitor


@pytest.fixture(scope="module")
def step() -> StepFigures:
    monitor = Monitor()
    with monitor.step("quality_report"):
        pass
    return StepFigures.of(monitor, 2)


def test_every_figure_has_a_warn_check_that_says_its_threshold():
    specs = {spec.name: spec for spec in quality_check_specs()}
    assert set(specs) == {"runtime", *METRICS}
    assert "at most max_lpips_outside_garment (lower is better)" in specs["lpips_outside_garment"].description
    assert "at least min_warp_mask_iou (higher is better)" in specs["warp_mask_iou"].description
    assert set(THRESHOLDS) == set(METRICS)


def test_a_pair_beyond_its_threshold_is_named_as_doubtful(step):
    figures = {
        "ann|shirt": QualityFigures({"lpips_outside_garment": 0.12}, {}),
        "bob|shirt": QualityFigures({"lpips_outside_garment": 0.41}, {}),
    }
    check = figure_check("lpips_outside_garment", figures, QualityConfig(), step)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == "doubtful: bob|shirt 0.4100"
    assert check.metadata["threshold"].value == 0.3 and check.metadata["worst"].value == 0.41
    relaxed = figure_check("lpips_outside_garment", figures, QualityConfig(max_lpips_outside_garment=0.5), step)
    assert relaxed.passed and relaxed.description == "all 2 computed figures within max 0.5"


def test_a_figure_without_its_network_is_never_green_and_says_why(step):
    figures = {"ann|shirt": QualityFigures({"warp_mask_iou": 0.7}, {"clip_garment_similarity": "no clip checkpoint"})}
    check = figure_check("clip_garment_similarity", figures, QualityConfig(), step)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == "not computed: ann|shirt (no clip checkpoint)"
    assert check.metadata["worst"].value is None
    low = figure_check("warp_mask_iou", figures, QualityConfig(min_warp_mask_iou=0.8), step)
    assert not low.passed and low.description == "doubtful: ann|shirt 0.7000"
