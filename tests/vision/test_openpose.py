"""OpenPose post-processing against scenes with known answers.

Each scene renders Gaussian keypoint peaks and PAF fields (unit vectors along limbs, times a magnitude) for
constructed people; the expected positions and person assignments follow from the construction, the expected
scores from the geometry (a part at amplitude ``a`` scores ``a``, a limb with field magnitude ``m`` scores
``m``) and, for every scene, from an independent plain-Python evaluation of the reference's rules
(``_oracle_decode``). Images are non-square so that an x/y swap cannot pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mycloset_assets.vision.openpose import (
    COCO17_FROM_OPENPOSE18,
    LIMB_PAF_CHANNELS,
    LIMBS,
    BodyPose,
    HandBox,
    _components_in_raster_order,
    connect_limbs,
    decode_body,
    decode_hand,
    find_peaks,
    gaussian_smooth,
    hand_boxes,
    maps_to_image,
    network_input,
    openpose18_to_coco17,
    pad_right_down,
    scale_factors,
)

KEYPOINTS = json.loads((Path(__file__).parents[1] / "fixtures" / "keypoints.json").read_text())
REF_LIMBS = [tuple(pair) for pair in KEYPOINTS["openpose_limbs_0based"]]
REF_PAF = [tuple(pair) for pair in KEYPOINTS["openpose_limb_paf_channels"]]

# A standing person, offsets from the neck (x right, y down), OpenPose-18 order.
TEMPLATE = {
    0: (0, -12), 1: (0, 0), 2: (-12, 0), 3: (-16, 18), 4: (-18, 34), 5: (12, 0), 6: (16, 18), 7: (18, 34),
    8: (-8, 40), 9: (-9, 62), 10: (-10, 84), 11: (8, 40), 12: (9, 62), 13: (10, 84),
    14: (-4, -16), 15: (4, -16), 16: (-8, -14), 17: (8, -14),
}  # fmt: skip


@dataclass
class Scene:
    """Peaks (part, x, y, amplitude, sigma) and PAF fields (limb, start, end, magnitude) to render."""

    height: int
    width: int
    peaks: list[tuple[int, int, int, float, float]] = field(default_factory=list)
    fields: list[tuple[int, tuple[int, int], tuple[int, int], float]] = field(default_factory=list)

    def person(
        self, parts: dict[int, tuple[int, int]], amplitude: float = 1.0, magnitude: float = 1.0, sigma: float = 2.5
    ) -> dict[int, tuple[int, int]]:
        """Add a person's peaks and the fields of every limb whose two parts it has; returns ``parts``."""
        for part, (x, y) in parts.items():
            self.peaks.append((part, x, y, amplitude, sigma))
        for limb, (a, b) in enumerate(REF_LIMBS):
            if a in parts and b in parts:
                self.fields.append((limb, parts[a], parts[b], magnitude))
        return parts

    def render(self, width: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps H x W x 19 (max of the Gaussians) and PAFs H x W x 38 (mean of the overlapping fields)."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        heat = np.zeros((self.height, self.width, 19))
        for part, x, y, amplitude, sigma in self.peaks:
            blob = amplitude * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
            heat[:, :, part] = np.maximum(heat[:, :, part], blob)
        heat[:, :, 18] = 1 - heat[:, :, :18].max(axis=2)
        paf = np.zeros((self.height, self.width, 38))
        count = np.zeros((self.height, self.width, 19))
        for limb, (xa, ya), (xb, yb), magnitude in self.fields:
            length = math.hypot(xb - xa, yb - ya)
            ux, uy = (xb - xa) / length, (yb - ya) / length
            t = np.clip((xs - xa) * ux + (ys - ya) * uy, 0, length)
            near = np.hypot(xs - (xa + t * ux), ys - (ya + t * uy)) <= width
            cx, cy = REF_PAF[limb]
            paf[:, :, cx][near] += magnitude * ux
            paf[:, :, cy][near] += magnitude * uy
            count[:, :, limb][near] += 1
        for limb, (cx, cy) in enumerate(REF_PAF):
            paf[:, :, cx] /= np.maximum(count[:, :, limb], 1)
            paf[:, :, cy] /= np.maximum(count[:, :, limb], 1)
        return heat, paf


def _at(neck: tuple[int, int], drop: tuple[int, ...] = (), **moved: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """The template person with its neck at ``neck``, without the parts in ``drop``; ``p<i>=(x, y)`` moves part i."""
    parts = {part: (neck[0] + dx, neck[1] + dy) for part, (dx, dy) in TEMPLATE.items() if part not in drop}
    parts.update({int(name[1:]): xy for name, xy in moved.items()})
    return parts


@cache
def _reflect_matrix(n: int, sigma: float = 3.0) -> np.ndarray:
    """n x n matrix of the 1-D Gaussian (radius 12) with half-sample-symmetric borders, built entry by entry."""
    radius = int(4 * sigma + 0.5)
    kernel = [math.exp(-(d * d) / (2 * sigma * sigma)) for d in range(-radius, radius + 1)]
    total = sum(kernel)
    matrix = np.zeros((n, n))
    for i in range(n):
        for d in range(-radius, radius + 1):
            j = i + d
            while j < 0 or j >= n:
                j = -j - 1 if j < 0 else 2 * n - j - 1
            matrix[i, j] += kernel[d + radius] / total
    return matrix


def _oracle_smooth(image: np.ndarray) -> np.ndarray:
    return _reflect_matrix(image.shape[0]) @ image @ _reflect_matrix(image.shape[1]).T


def _oracle_decode(heat: np.ndarray, paf: np.ndarray, image_height: int) -> tuple[list, list]:
    """The reference's rules evaluated the plain way: candidates [(x, y, score)] and people
    [(parts: list of candidate index or -1, total score, count)] in the reference's order."""
    candidates: list[tuple[int, int, float]] = []
    by_part: list[list[int]] = []
    for part in range(18):
        smooth = np.pad(_oracle_smooth(heat[:, :, part]), 1)  # 0 outside the image
        centre = smooth[1:-1, 1:-1]
        is_peak = (centre > 0.1) & (centre >= smooth[:-2, 1:-1]) & (centre >= smooth[2:, 1:-1])
        is_peak &= (centre >= smooth[1:-1, :-2]) & (centre >= smooth[1:-1, 2:])
        mine = []
        for y, x in zip(*np.nonzero(is_peak), strict=True):
            mine.append(len(candidates))
            candidates.append((int(x), int(y), float(heat[y, x, part])))
        by_part.append(mine)
    people: list[dict] = []
    for k, ((a, b), (cx, cy)) in enumerate(zip(REF_LIMBS, REF_PAF, strict=True)):
        if not by_part[a] or not by_part[b]:
            continue
        options = []
        for i, ia in enumerate(by_part[a]):
            for j, ib in enumerate(by_part[b]):
                (xa, ya, _), (xb, yb, _) = candidates[ia], candidates[ib]
                norm = max(math.hypot(xb - xa, yb - ya), 0.001)
                ux, uy = (xb - xa) / norm, (yb - ya) / norm
                values = []
                for s in range(10):
                    px, py = round(xa + (xb - xa) * s / 9), round(ya + (yb - ya) * s / 9)
                    values.append(paf[py, px, cx] * ux + paf[py, px, cy] * uy)
                score = sum(values) / 10 + min(0.5 * image_height / norm - 1, 0)
                if sum(v > 0.05 for v in values) > 8 and score > 0:
                    options.append((score, i, j))
        options.sort(key=lambda option: -option[0])
        taken, used_i, used_j = [], set(), set()
        for score, i, j in options:
            if i not in used_i and j not in used_j and len(taken) < min(len(by_part[a]), len(by_part[b])):
                taken.append((by_part[a][i], by_part[b][j], score))
                used_i.add(i)
                used_j.add(j)
        for ia, ib, score in taken:
            hits = [p for p in people if p["parts"][a] == ia or p["parts"][b] == ib][:2]
            if len(hits) == 1:
                if hits[0]["parts"][b] != ib:
                    hits[0]["parts"][b] = ib
                    hits[0]["count"] += 1
                    hits[0]["score"] += candidates[ib][2] + score
            elif len(hits) == 2:
                first, second = hits
                if any(p >= 0 and q >= 0 for p, q in zip(first["parts"], second["parts"], strict=True)):
                    first["parts"][b] = ib
                    first["count"] += 1
                    first["score"] += candidates[ib][2] + score
                else:
                    first["parts"] = [max(p, q) for p, q in zip(first["parts"], second["parts"], strict=True)]
                    first["count"] += second["count"]
                    first["score"] += second["score"] + score
                    people.remove(second)
            elif k < 17:
                parts = [-1] * 18
                parts[a], parts[b] = ia, ib
                people.append({"parts": parts, "count": 2, "score": candidates[ia][2] + candidates[ib][2] + score})
    kept = [p for p in people if p["count"] >= 4 and p["score"] / p["count"] >= 0.4]
    return candidates, [(p["parts"], p["score"], p["count"]) for p in kept]


def _decode_and_check(scene: Scene, image_height: int | None = None) -> BodyPose:
    """decode_body on the rendered scene, asserted equal to the oracle (positions and people exactly, scores 1e-6)."""
    heat, paf = scene.render()
    pose = decode_body(heat, paf, image_height)
    candidates, people = _oracle_decode(heat, paf, image_height or scene.height)
    assert pose.candidates[:, :2].tolist() == [[x, y] for x, y, _ in candidates]
    np.testing.assert_allclose(pose.candidates[:, 2], [s for _, _, s in candidates], rtol=0, atol=1e-12)
    assert pose.subset[:, :18].astype(int).tolist() == [parts for parts, _, _ in people]
    np.testing.assert_allclose(pose.scores, [score for _, score, _ in people], rtol=0, atol=1e-6)
    assert pose.part_counts.tolist() == [count for _, _, count in people]
    for person, (parts, _, _) in zip(pose.keypoints, people, strict=True):
        for part, index in enumerate(parts):
            expected = (-1.0, -1.0, 0.0) if index < 0 else candidates[index]
            assert tuple(person[part]) == pytest.approx(expected, abs=1e-12)
    return pose


def _xy(pose: BodyPose) -> list[dict[int, tuple[int, int]]]:
    """Each person's present parts as {part: (x, y)}."""
    return [{p: (int(x), int(y)) for p, (x, y, _) in enumerate(person) if x >= 0} for person in pose.keypoints]


def test_three_complete_people_in_score_order() -> None:
    scene = Scene(120, 260)
    left = scene.person(_at((40, 24)), magnitude=0.6)
    middle = scene.person(_at((130, 24)), magnitude=1.0)
    right = scene.person(_at((220, 24)), magnitude=0.8)
    pose = _decode_and_check(scene)
    # People are created by the neck-shoulder limb in descending limb score: magnitude 1.0, 0.8, 0.6.
    assert _xy(pose) == [middle, right, left]
    assert pose.keypoints.shape == (3, 18, 3) and pose.keypoints.dtype == np.float64
    assert np.all(pose.keypoints[:, :, 2] == 1.0)
    # 18 parts at 1.0 + 17 limbs of the spanning tree (the two ear-shoulder links add nothing).
    np.testing.assert_allclose(pose.scores, [18 + 17 * 1.0, 18 + 17 * 0.8, 18 + 17 * 0.6], rtol=0, atol=1e-6)
    assert pose.part_counts.tolist() == [18, 18, 18]
    assert len(pose.candidates) == 54
    assert pose.candidates[:, 3].tolist() == list(range(54))


def test_image_height_defaults_to_the_maps_height() -> None:
    scene = Scene(120, 260)
    scene.person(_at((130, 24)))
    heat, paf = scene.render()
    implicit, explicit = decode_body(heat, paf), decode_body(heat, paf, image_height=120)
    assert np.array_equal(implicit.subset, explicit.subset)


def test_crossing_forearms_keep_their_owners() -> None:
    scene = Scene(100, 200)
    first = scene.person({1: (40, 20), 2: (60, 25), 3: (80, 50), 4: (110, 80), 5: (25, 25)}, magnitude=1.0)
    second = scene.person({1: (150, 20), 2: (130, 25), 3: (99, 51), 4: (72, 78), 5: (165, 25)}, magnitude=0.9)
    pose = _decode_and_check(scene)
    assert _xy(pose) == [first, second]
    # The forearms cross at right angles at (90, 60), a sample of both; the fields' mean there projects at half
    # of each magnitude, every other sample sees only its own field.
    np.testing.assert_allclose(
        pose.scores, [5 + 3 * 1.0 + (9 + 0.5) / 10, 5 + 3 * 0.9 + (9 * 0.9 + 0.45) / 10], rtol=0, atol=1e-6
    )


def test_missing_parts_and_empty_channels() -> None:
    scene = Scene(120, 200)
    parts = scene.person(_at((100, 25), drop=(6, 7, 16, 17)), magnitude=0.7)  # no left arm, no ears at all
    pose = _decode_and_check(scene)
    assert _xy(pose) == [parts]
    for part in (6, 7, 16, 17):
        assert pose.keypoints[0, part].tolist() == [-1.0, -1.0, 0.0]
    np.testing.assert_allclose(pose.scores, [14 + 13 * 0.7], rtol=0, atol=1e-6)
    assert pose.part_counts.tolist() == [14]


def test_weak_people_are_deleted_by_the_two_rules() -> None:
    scene = Scene(80, 320)
    shape = {1: (0, 20), 2: (-15, 22), 5: (15, 22), 3: (-18, 45)}

    def moved(x: int, parts: tuple[int, ...] = (1, 2, 5, 3)) -> dict[int, tuple[int, int]]:
        return {p: (x + shape[p][0], shape[p][1]) for p in parts}

    strong = scene.person(moved(40), magnitude=1.0)
    scene.person(moved(120, (1, 2, 5)), magnitude=0.9)  # 3 parts: fewer than 4
    faint = scene.person(moved(200), amplitude=0.3, magnitude=0.15, sigma=6.0)  # (4 * 0.3 + 3 * 0.15) / 4 = 0.4125
    scene.person(moved(280), amplitude=0.3, magnitude=0.12, sigma=6.0)  # (4 * 0.3 + 3 * 0.12) / 4 = 0.39 < 0.4
    pose = _decode_and_check(scene)
    assert _xy(pose) == [strong, faint]
    np.testing.assert_allclose(pose.scores, [4 + 3 * 1.0, 4 * 0.3 + 3 * 0.15], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pose.keypoints[1, [1, 2, 3, 5], 2], 0.3, rtol=0, atol=1e-12)


def test_keypoints_on_the_image_border() -> None:
    scene = Scene(90, 70)
    parts = scene.person(
        _at((35, 12), drop=(14, 15, 16, 17), p0=(35, 0), p4=(0, 44), p7=(69, 44), p10=(25, 89), p13=(45, 89)),
        magnitude=0.9,
    )
    pose = _decode_and_check(scene)
    assert _xy(pose) == [parts]
    assert pose.keypoints[0, [0, 4, 7, 10, 13], :2].tolist() == [[35, 0], [0, 44], [69, 44], [25, 89], [45, 89]]
    np.testing.assert_allclose(pose.scores, [14 + 13 * 0.9], rtol=0, atol=1e-6)


def test_a_person_without_neck_is_merged_through_the_ear_links() -> None:
    """Arms and head start as separate people; the ear-shoulder links merge them (found == 2, disjoint); the
    legs, never joined without a neck, stay 3-part people and are deleted."""
    scene = Scene(120, 260)
    parts = scene.person(_at((130, 24), drop=(1,)), magnitude=0.8)
    pose = _decode_and_check(scene)
    upper = {p: xy for p, xy in parts.items() if p in (0, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17)}
    assert _xy(pose) == [upper]
    np.testing.assert_allclose(pose.scores, [11 + 10 * 0.8], rtol=0, atol=1e-6)
    assert pose.part_counts.tolist() == [11]


def test_a_link_between_two_people_that_share_parts_extends_the_first() -> None:
    """A stray head (nose, right eye, right ear) whose ear is linked to a person lacking that ear: the two share
    parts, so the reference gives the ear to the first person (found == 2, not disjoint); the stray head (3
    parts) is deleted."""
    scene = Scene(120, 260)
    person = scene.person(_at((100, 30), drop=(16,)), magnitude=0.9)
    stray = {0: (135, 55), 14: (131, 51), 16: (125, 50)}
    for part, (x, y) in stray.items():
        scene.peaks.append((part, x, y, 1.0, 2.5))
    scene.fields += [(13, stray[0], stray[14], 0.9), (14, stray[14], stray[16], 0.9), (17, person[2], stray[16], 0.9)]
    pose = _decode_and_check(scene)
    assert _xy(pose) == [{**person, 16: (125, 50)}]
    np.testing.assert_allclose(pose.scores, [18 + 17 * 0.9], rtol=0, atol=1e-6)


def test_empty_maps_give_no_people() -> None:
    pose = decode_body(np.zeros((30, 50, 19)), np.zeros((30, 50, 38)))
    assert pose.keypoints.shape == (0, 18, 3) and pose.scores.shape == (0,) and pose.candidates.shape == (0, 4)
    assert pose.to_coco17().shape == (0, 17, 3)
    assert len(pose) == 0


def test_map_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"heatmaps must be H x W x 19 \(channels last, at image resolution\)"):
        decode_body(np.zeros((19, 30, 50)), np.zeros((30, 50, 38)))
    with pytest.raises(ValueError, match=r"pafs must be H x W x 38"):
        decode_body(np.zeros((30, 50, 19)), np.zeros((30, 50, 19)))
    with pytest.raises(ValueError, match=r"must have the same H x W"):
        decode_body(np.zeros((30, 50, 19)), np.zeros((30, 40, 38)))


def _line_scene(value: float, gaps: tuple[int, ...] = ()) -> tuple[list[np.ndarray], np.ndarray]:
    """A neck at (5, 20) and a right shoulder at (50, 20) (samples at x = 5, 10, ..., 50) with the limb's PAF
    set to ``value`` along the row, 0 at the samples in ``gaps``; H x W = 40 x 100."""
    heat = np.zeros((40, 100, 18))
    heat[20, 5, 1] = heat[20, 50, 2] = 10.0
    paf = np.zeros((40, 100, 38))
    paf[20, 5:51, 12] = value
    for gap in gaps:
        paf[20, 5 + 5 * gap, 12] = 0.0
    return find_peaks(heat), paf


@pytest.mark.parametrize(("gaps", "connected"), [((), True), ((4,), True), ((3, 7), False)])
def test_more_than_80_percent_of_the_samples_must_exceed_the_threshold(gaps: tuple[int, ...], connected: bool) -> None:
    peaks, paf = _line_scene(1.0, gaps)
    limb = connect_limbs(peaks, paf, image_height=100)[0]
    assert limb.tolist() == ([[0.0, 1.0, (10 - len(gaps)) / 10, 0.0, 0.0]] if connected else [])


def test_the_distance_prior_penalises_limbs_longer_than_half_the_image() -> None:
    peaks, paf = _line_scene(0.5)
    assert connect_limbs(peaks, paf, image_height=40)[0].tolist() == []  # 0.5 + (20 / 45 - 1) < 0
    np.testing.assert_allclose(connect_limbs(peaks, paf, image_height=80)[0][0, 2], 0.5 + 40 / 45 - 1, atol=1e-12)
    assert connect_limbs(peaks, paf, image_height=100)[0][0, 2] == pytest.approx(0.5, abs=1e-12)


def test_greedy_matching_takes_the_best_pair_and_stops_at_the_smaller_side() -> None:
    heat = np.zeros((40, 100, 18))
    heat[20, 50, 1] = heat[20, 20, 2] = heat[20, 80, 2] = 10.0  # one neck, two right shoulders
    paf = np.zeros((40, 100, 38))
    paf[20, 20:51, 12] = -1.0  # towards the left shoulder candidate, magnitude 1
    paf[20, 50:81, 12] = 0.7  # towards the right one, magnitude 0.7
    paf[20, 50, 12] = 0.0  # the shared start sample: 0 for both
    peaks = find_peaks(heat)
    limbs = connect_limbs(peaks, paf, image_height=100)
    assert [p[:, 0].tolist() for p in peaks[1:3]] == [[50.0], [20.0, 80.0]]
    assert limbs[0].tolist() == [[0.0, 1.0, 0.9, 0.0, 0.0]]
    assert all(limb is None for limb in limbs[1:])


def test_peaks_use_greater_or_equal_and_number_row_major_across_channels() -> None:
    heat = np.zeros((30, 40, 3))
    heat[:, :, 0] = 0.05  # below the threshold everywhere
    heat[:, :, 1] = 0.5  # a plateau: every smoothed pixel equals its neighbours, so all are peaks
    heat[7, 25, 2] = 10.0
    peaks = find_peaks(heat)
    assert peaks[0].shape == (0, 4)
    assert peaks[1][:, :2].tolist() == [[x, y] for y in range(30) for x in range(40)]
    assert peaks[1][:, 3].tolist() == list(range(1200))
    assert peaks[2].tolist() == [[25.0, 7.0, 10.0, 1200.0]]


def test_peaks_equal_those_of_the_fully_smoothed_map() -> None:
    """find_peaks smooths only the rows and columns that can exceed the threshold; the peaks must be those of
    the whole smoothed map, including where the skipped region borders a peak."""
    rng = np.random.default_rng(5)
    heat = np.zeros((70, 90, 4))
    ys, xs = np.mgrid[0:70, 0:90]
    for channel in range(4):
        for _ in range(6):
            x, y, amplitude = rng.uniform(-5, 95), rng.uniform(-5, 75), rng.uniform(0.1, 0.6)
            heat[:, :, channel] += amplitude * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * rng.uniform(1, 5) ** 2))
    heat += rng.normal(0, 0.01, heat.shape)
    heat[20:50, 30:60, 3] = 0.12  # barely above the threshold, flat: its smoothed centre is a 6 x 6 plateau of peaks
    smooth = np.pad(gaussian_smooth(heat), ((1, 1), (1, 1), (0, 0)))
    centre = smooth[1:-1, 1:-1]
    expected = (centre > 0.1) & (centre >= smooth[:-2, 1:-1]) & (centre >= smooth[2:, 1:-1])
    expected &= (centre >= smooth[1:-1, :-2]) & (centre >= smooth[1:-1, 2:])
    peaks = find_peaks(heat)
    for channel in range(4):
        want_y, want_x = np.nonzero(expected[:, :, channel])
        assert peaks[channel][:, :2].tolist() == np.stack([want_x, want_y], axis=1).tolist()
        assert peaks[channel][:, 2].tolist() == heat[want_y, want_x, channel].tolist()
    assert sum(len(p) for p in peaks) >= 12
    assert {(42 + i, 32 + j) for i in range(6) for j in range(6)} <= {(int(x), int(y)) for x, y, _, _ in peaks[3]}


@pytest.mark.parametrize("shape", [(40, 23), (7, 31), (1, 5)])
def test_gaussian_smoothing_equals_the_reflect_border_convolution(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(3).standard_normal(shape)
    np.testing.assert_allclose(gaussian_smooth(image), _oracle_smooth(image), rtol=0, atol=1e-12)
    stacked = gaussian_smooth(np.stack([image, 2 * image], axis=2))
    np.testing.assert_allclose(stacked[:, :, 1], 2 * _oracle_smooth(image), rtol=0, atol=1e-12)


def test_tables_match_keypoints_json() -> None:
    assert [list(pair) for pair in LIMBS] == KEYPOINTS["openpose_limbs_0based"]
    assert [list(pair) for pair in LIMB_PAF_CHANNELS] == KEYPOINTS["openpose_limb_paf_channels"]
    assert list(COCO17_FROM_OPENPOSE18) == KEYPOINTS["coco17_to_openpose18"]
    for openpose, coco in enumerate(KEYPOINTS["openpose18_to_coco17"]):
        if coco is not None:
            assert COCO17_FROM_OPENPOSE18[coco] == openpose


def test_openpose18_to_coco17_moves_every_keypoint_by_name() -> None:
    names18, names17 = KEYPOINTS["openpose18"], KEYPOINTS["coco17"]
    spelled = {name: name.replace("R", "right_", 1).replace("L", "left_", 1) if name[0] in "RL" else name
               for name in names18}  # fmt: skip
    points = np.arange(2 * 18 * 3, dtype=np.float64).reshape(2, 18, 3)
    coco = openpose18_to_coco17(points)
    assert coco.shape == (2, 17, 3)
    for c, name in enumerate(names17):
        source = next(i for i, n in enumerate(names18) if spelled[n].lower() == name)
        assert coco[:, c].tolist() == points[:, source].tolist()
    with pytest.raises(ValueError, match=r"keypoints must be \.\.\. x 18 x K"):
        openpose18_to_coco17(np.zeros((2, 17, 3)))


def test_to_coco17_keeps_missing_parts_missing() -> None:
    scene = Scene(120, 200)
    scene.person(_at((100, 25), drop=(6, 7, 16, 17)), magnitude=0.7)
    heat, paf = scene.render()
    coco = decode_body(heat, paf).to_coco17()
    assert coco[0, 4].tolist() == [-1.0, -1.0, 0.0]  # left_ear <- LEar (dropped)
    assert coco[0, 9].tolist() == [-1.0, -1.0, 0.0]  # left_wrist <- LWrist (dropped)
    assert coco[0, 10].tolist() == [100 - 18, 25 + 34, 1.0]  # right_wrist <- RWrist
    assert coco[0, 0].tolist() == [100, 25 - 12, 1.0]  # nose


def _arm_points(arms: dict[int, tuple[float, float]]) -> np.ndarray:
    points = np.tile([-1.0, -1.0, 0.0], (1, 18, 1))
    for part, (x, y) in arms.items():
        points[0, part] = (x, y, 0.9)
    return points


def test_hand_boxes_follow_hand_detect() -> None:
    # Right arm straight down: centre (100, 200 + 0.33 * 40), side 1.5 * max(40, 0.9 * 60) = 81.
    # Left arm: wrist-elbow 50 (3-4-5), elbow-shoulder 20: side 75, centre (230 + 0.33 * 30, 140 + 0.33 * 40).
    points = _arm_points({2: (100, 100), 3: (100, 160), 4: (100, 200), 5: (200, 80), 6: (200, 100), 7: (230, 140)})
    boxes = hand_boxes(points, image_height=300, image_width=400)
    left_x, left_y = 230 + 0.33 * 30 - 37.5, 140 + 0.33 * 40 - 37.5
    assert boxes == [
        HandBox(x=int(left_x), y=int(left_y), size=75, is_left=True, person=0),
        HandBox(x=int(100 - 40.5), y=int(200 + 0.33 * 40 - 40.5), size=81, is_left=False, person=0),
    ]


def test_hand_boxes_are_clipped_and_small_ones_dropped() -> None:
    # Near the top-left corner: the box moves to (0, 0) and keeps its side; near the bottom it shrinks.
    corner = _arm_points({2: (40, 60), 3: (30, 40), 4: (20, 20)})  # wrist-elbow sqrt(200), side 1.5 * sqrt(500)
    assert hand_boxes(corner, 200, 300) == [HandBox(0, 0, int(1.5 * math.sqrt(500)), False, 0)]
    bottom = _arm_points({5: (150, 100), 6: (150, 150), 7: (150, 180)})  # side 1.5 * 45 = 67.5, y = 189.9 - 33.75
    assert hand_boxes(bottom, 200, 300) == [
        HandBox(int(150 + 0 - 33.75), int(189.9 - 33.75), int(200 - 156.15), True, 0)
    ]
    tiny = _arm_points({5: (150, 100), 6: (150, 108), 7: (150, 112)})  # side 1.5 * 7.2 = 10.8 < 20
    assert hand_boxes(tiny, 200, 300) == []
    no_elbow = _arm_points({2: (100, 100), 4: (100, 200)})
    assert hand_boxes(no_elbow, 300, 400) == []


def _hand_maps(height: int, width: int, blobs: dict[int, list[tuple[float, float, float, float]]]) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    maps = np.zeros((height, width, 22))
    for part, items in blobs.items():
        for x, y, amplitude, sigma in items:
            maps[:, :, part] += amplitude * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return maps


def test_hand_keypoint_is_the_peak_of_the_heaviest_component() -> None:
    maps = _hand_maps(
        40,
        64,
        {
            0: [(12, 30, 0.8, 2.0)],
            # A tall narrow blob (mass 2 pi 1.5^2 = 14) and a low wide one (mass 2 pi 25 * 0.5 = 79): the wide wins.
            1: [(10, 10, 1.0, 1.5), (45, 25, 0.5, 5.0)],
            3: [(30, 5, 0.04, 2.0)],  # smoothed maximum below 0.05: not found
        },
    )
    maps[30, 50, 4] = 0.5  # a lone spike: 0.5 unsmoothed, 0.5 / (18 pi) < 0.05 smoothed, so not found
    keypoints = decode_hand(maps)
    assert keypoints.shape == (21, 3)
    assert keypoints[0].tolist() == pytest.approx([12, 30, 0.8], abs=1e-12)
    assert keypoints[1].tolist() == pytest.approx([45, 25, 0.5], abs=1e-12)
    assert keypoints[2].tolist() == [-1.0, -1.0, 0.0]
    assert keypoints[3].tolist() == [-1.0, -1.0, 0.0]
    assert keypoints[4].tolist() == [-1.0, -1.0, 0.0]
    with pytest.raises(ValueError, match=r"heatmaps must be H x W x 22"):
        decode_hand(np.zeros((22, 40, 64)))


def test_hand_components_tie_goes_to_the_first_in_raster_order() -> None:
    # Two identical blobs (equal masses, bit for bit): the one whose first pixel comes first row-major wins,
    # though it is further right.
    maps = _hand_maps(48, 80, {0: [(55, 14, 1.0, 2.0), (20, 32, 1.0, 2.0)]})
    assert decode_hand(maps)[0].tolist() == pytest.approx([55, 14, 1.0], abs=1e-12)


def test_components_are_8_connected_and_numbered_row_major() -> None:
    mask = np.zeros((5, 8), dtype=bool)
    mask[1, 5] = mask[2, 6] = True  # touching diagonally only: one component
    mask[2, 0] = mask[3, 0] = True
    mask[4, 7] = True
    labels = _components_in_raster_order(mask)
    assert labels[1, 5] == labels[2, 6] == 1
    assert labels[2, 0] == labels[3, 0] == 2
    assert labels[4, 7] == 3
    assert np.count_nonzero(labels) == 5


def test_pad_right_down_pads_bottom_and_right_with_the_value() -> None:
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded, pad = pad_right_down(image, 8, 128)
    assert padded.shape == (8, 8, 3) and pad == (0, 0, 3, 2)
    assert np.array_equal(padded[:5, :6], image)
    assert np.all(padded[5:] == 128) and np.all(padded[:, 6:] == 128)
    assert pad_right_down(np.zeros((16, 8, 3), np.uint8), 8, 128)[1] == (0, 0, 0, 0)


def test_network_input_and_maps_back_to_the_image() -> None:
    assert scale_factors(400, [0.5, 1.0], 368) == [0.46, 0.92]
    image = np.full((20, 30, 3), 64, dtype=np.uint8)
    tensor, pad = network_input(image, 0.5, 8, 128)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == np.float32 and pad == (0, 0, 6, 1)
    assert tensor[0, :, :10, :15].tolist() == np.full((3, 10, 15), 64 / 256 - 0.5, np.float32).tolist()
    assert np.all(tensor[0, :, 10:] == np.float32(128 / 256 - 0.5))
    # A constant map stays constant through the bicubic resizes; the padding is cropped before the last resize.
    maps = np.full((2, 2, 2), 0.25, dtype=np.float32)
    back = maps_to_image(maps, pad, 8, 20, 30)
    assert back.shape == (20, 30, 2) and np.allclose(back, 0.25, atol=1e-6)
