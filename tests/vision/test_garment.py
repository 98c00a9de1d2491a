"""Garment-photo masks: ClothSeg-4 classes, largest component, U2Net normPRED and thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mycloset_assets.vision.garment import (
    GARMENT_KINDS,
    SaliencyResult,
    cloth_seg_ids,
    cloth_seg_mask,
    dominant_garment,
    largest_component,
    norm_pred,
    saliency_mask,
)

# 0 background, 1 upper, 2 lower, 3 full
CLOTH = np.array(
    [
        [1, 1, 0, 0, 3],
        [1, 1, 0, 2, 0],
        [0, 0, 0, 2, 0],
        [1, 0, 0, 2, 2],
    ],
    dtype=np.uint8,
)


def test_cloth_seg_ids_follow_the_label_set() -> None:
    assert GARMENT_KINDS == ("upper", "lower", "full")
    assert cloth_seg_ids(["upper"]) == (1,)
    assert cloth_seg_ids(["lower"]) == (2,)
    assert cloth_seg_ids(["full"]) == (3,)
    assert cloth_seg_ids() == (1, 2, 3)
    with pytest.raises(ValueError, match=r"unknown garment kind 'dress'; cloth segmentation knows upper, lower, full"):
        cloth_seg_ids(["dress"])


def test_cloth_seg_masks_per_kind() -> None:
    np.testing.assert_array_equal(cloth_seg_mask(CLOTH, ["upper"]), CLOTH == 1)
    np.testing.assert_array_equal(cloth_seg_mask(CLOTH, ["lower", "full"]), (CLOTH == 2) | (CLOTH == 3))
    np.testing.assert_array_equal(cloth_seg_mask(CLOTH), CLOTH > 0)
    with pytest.raises(ValueError, match=r"H x W label map, got shape \(4,\)"):
        cloth_seg_mask(np.zeros(4, dtype=np.uint8))


def test_largest_component_keeps_the_biggest_8_connected_region() -> None:
    upper = cloth_seg_mask(CLOTH, ["upper"], largest_only=True)
    np.testing.assert_array_equal(upper, [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    # the full-body pixel touches the lower-body column only diagonally: 8-connectivity joins them
    garments = cloth_seg_mask(CLOTH, ["lower", "full"], largest_only=True)
    np.testing.assert_array_equal(garments, (CLOTH == 2) | (CLOTH == 3))
    assert not largest_component(np.zeros((3, 3), dtype=bool)).any()
    with pytest.raises(ValueError, match=r"mask must be H x W, got shape \(2, 2, 1\)"):
        largest_component(np.zeros((2, 2, 1), dtype=bool))


def test_dominant_garment_counts_pixels() -> None:
    assert dominant_garment(CLOTH) == "upper"  # 5 upper, 4 lower, 1 full
    assert dominant_garment(np.array([[2, 1]])) == "upper"  # a tie goes to the first kind
    assert dominant_garment(np.array([[3, 3, 2]])) == "full"
    assert dominant_garment(np.zeros((2, 2), dtype=np.uint8)) is None


def test_norm_pred_is_min_max() -> None:
    torch.testing.assert_close(norm_pred(torch.tensor([[2.0, 4.0], [6.0, 3.0]])), torch.tensor([[0, 0.5], [1, 0.25]]))
    torch.testing.assert_close(norm_pred(torch.full((2, 3), 0.7)), torch.zeros(2, 3))


def test_saliency_threshold_is_strict() -> None:
    saliency = np.array([[0.0, 0.5, 0.51], [1.0, 0.2, 0.9]], dtype=np.float32)
    np.testing.assert_array_equal(saliency_mask(saliency), [[0, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(saliency_mask(saliency, 0.0), saliency > 0)
    np.testing.assert_array_equal(saliency_mask(saliency, largest_only=True), [[0, 0, 1], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1.0"):
        saliency_mask(saliency, 1.0)
    with pytest.raises(ValueError, match=r"H x W map, got shape \(1, 2, 3\)"):
        saliency_mask(saliency[None])


def test_saliency_result_mask() -> None:
    saliency = np.array([[0.9, 0.0, 0.8], [0.0, 0.0, 0.7]], dtype=np.float32)
    result = SaliencyResult(saliency, threshold=0.75)
    np.testing.assert_array_equal(result.mask(), [[1, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(result.mask(largest_only=True), [[1, 0, 0], [0, 0, 0]])
