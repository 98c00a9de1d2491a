"""OpenPose post-processing, equal to the reference (Hzzone/pytorch-openpose ``src/body.py``, ``src/hand.py``,
``src/util.py``; the same code as ControlNet's ``annotator/openpose``).

Body: the network's maps, resized back to the image (``heatmaps`` H x W x 19, ``pafs`` H x W x 38), are
decoded in three steps, each exactly as the reference computes it:

1. **Peaks**: every keypoint map is smoothed with a Gaussian (sigma 3, scipy's ``gaussian_filter`` with its
   defaults: truncate 4, ``reflect`` borders); a peak is a pixel ``>=`` its four neighbours (outside the image
   counts as 0) and ``> 0.1``. Its score is the *unsmoothed* map at that pixel. Peaks get ids in part order,
   row-major within a part. Only the rows and columns whose neighbourhood can smooth to above the threshold
   are computed (the rest cannot hold a peak), which keeps mostly empty maps cheap; the peaks are the same.
2. **Limbs**: for each of the 19 limbs every pair of peaks (A, B) is scored by sampling the limb's PAF at
   10 points of the segment (rounded half to even) and projecting on the unit vector A -> B; the score is the
   mean plus the distance prior ``min(0.5 * image_height / |AB| - 1, 0)``. A pair is a candidate when more
   than 80 % of the samples exceed 0.05 and the score is positive; candidates are taken greedily by
   descending score, each peak at most once, until ``min(nA, nB)`` are taken.
3. **People**: limbs are joined into people in limb order (a new person only from the first 17 limbs,
   two people that share a limb end are merged when disjoint); people with fewer than 4 parts or a mean score
   per part below 0.4 are deleted.

Hands: boxes from the arm keypoints (``handDetect``) and, per box, the peak of each of the 21 hand maps
within the connected component (8-connectivity) of the smoothed map ``> 0.05`` of largest total mass.

The pre-processing helpers (scale, pad, resize the maps back) are here too, so the wrappers only add the
network. Everything is float64 like the reference's ``heatmap_avg``; coordinates are integer pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BODY_PARTS = 18
HAND_PARTS = 21
PEAK_THRESHOLD = 0.1
PAF_THRESHOLD = 0.05
HAND_THRESHOLD = 0.05
PAF_SAMPLES = 10
SMOOTHING_SIGMA = 3.0

#: 19 limbs as 0-based OpenPose-18 part pairs, in the reference's ``limbSeq`` order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip
#: PAF channels (x, y) of each limb (the reference's ``mapIdx`` minus 19).
LIMB_PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7),
    (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip
#: Limbs from this index on (the ear-shoulder links) never start a new person.
NEW_PERSON_LIMBS = 17
#: COCO-17 keypoint c is OpenPose-18 keypoint ``COCO17_FROM_OPENPOSE18[c]`` (the neck has no COCO counterpart).
COCO17_FROM_OPENPOSE18: tuple[int, ...] = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
#: (shoulder, elbow, wrist) of the left and the right arm, in OpenPose-18 indices.
LEFT_ARM = (5, 6, 7)
RIGHT_ARM = (2, 3, 4)
WRIST_ELBOW_RATIO = 0.33
MIN_HAND_BOX = 20


@dataclass(frozen=True)
class BodyPose:
    """People decoded from OpenPose body maps, in the reference's order.

    ``keypoints``: P x 18 x 3 float64 (x, y, score) in OpenPose-18 order, x and y integer pixels, score the
    unsmoothed heatmap at the peak; a missing part is ``(-1, -1, 0)`` (presence is ``x >= 0``: a present peak's
    score may be 0 or below on odd maps). ``scores``: (P,) the reference's total ``subset[:, 18]`` (part scores
    plus connection scores). ``part_counts``: (P,) ``subset[:, 19]``. ``candidates``: N x 4 every peak
    (x, y, score, id) and ``subset``: P x 20, the reference's own return values.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    part_counts: np.ndarray
    candidates: np.ndarray
    subset: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_coco17(self) -> np.ndarray:
        """P x 17 x 3 (x, y, score) in COCO-17 order; the neck is dropped, missing parts stay ``(-1, -1, 0)``."""
        return openpose18_to_coco17(self.keypoints)


@dataclass(frozen=True)
class HandBox:
    """A square hand crop ``image[y : y + size, x : x + size]`` of person ``person``'s left or right hand."""

    x: int
    y: int
    size: int
    is_left: bool
    person: int


def openpose18_to_coco17(keypoints: np.ndarray) -> np.ndarray:
    """... x 18 x K OpenPose-18 keypoints -> ... x 17 x K in COCO-17 order (table in ``keypoints.json``)."""
    keypoints = np.asarray(keypoints)
    if keypoints.ndim < 2 or keypoints.shape[-2] != BODY_PARTS:
        raise ValueError(f"keypoints must be ... x {BODY_PARTS} x K (OpenPose-18), got shape {keypoints.shape}")
    return keypoints[..., list(COCO17_FROM_OPENPOSE18), :]


def _gaussian_weights(sigma: float, truncate: float) -> np.ndarray:
    """scipy's ``_gaussian_kernel1d`` (order 0), computed with the same operations."""
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * offsets**2)
    return weights / weights.sum()


def _correlate_at(maps: np.ndarray, positions: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """The symmetric correlation of ``maps`` along ``axis`` with ``reflect`` borders, at ``positions`` only, summed
    in scipy's ``correlate1d`` order (centre first, then the pairs from the outermost in)."""
    radius = len(weights) // 2
    # Index of every sample of the reflect-extended line (d c b a | a b c d | d c b a, repeated if short).
    source = np.pad(np.arange(maps.shape[axis]), radius, mode="symmetric")
    centres = positions + radius
    out = maps.take(source[centres], axis=axis) * weights[radius]
    for offset in range(radius, 0, -1):
        pair = maps.take(source[centres - offset], axis=axis) + maps.take(source[centres + offset], axis=axis)
        pair *= weights[radius - offset]
        out += pair
    return out


def gaussian_smooth(maps: np.ndarray, sigma: float = SMOOTHING_SIGMA, truncate: float = 4.0) -> np.ndarray:
    """Smooth each channel of H x W (x C) ``maps`` like ``scipy.ndimage.gaussian_filter(map, sigma)``.

    Equal to scipy's result bit for bit on float64 input (same kernel, ``reflect`` borders, rows first, the same
    order of additions), so the peak test ``>=`` breaks ties as the reference does; scipy is not required.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim not in (2, 3):
        raise ValueError(f"maps must be H x W or H x W x C, got shape {maps.shape}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    weights = _gaussian_weights(sigma, truncate)
    rows, cols = np.arange(maps.shape[0]), np.arange(maps.shape[1])
    return _correlate_at(_correlate_at(maps, rows, weights, 0), cols, weights, 1)


def _reachable(maxima: np.ndarray, radius: int, threshold: float) -> np.ndarray:
    """Positions whose reflect-padded window of ``2 * radius + 1`` ``maxima`` may smooth to above ``threshold``."""
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(maxima, radius, mode="symmetric"), 2 * radius + 1)
    # A weighted mean with positive weights summing to 1 never exceeds the window maximum (up to rounding).
    bound = windows.max(axis=1)
    return np.nonzero(bound + np.abs(bound) * 1e-9 > threshold)[0]


def _smooth_above(channel: np.ndarray, threshold: float) -> np.ndarray:
    """H x W: ``gaussian_smooth(channel)`` exactly wherever it can exceed ``threshold``, -inf elsewhere (where it
    cannot), so the peak test gives the same answer. Skipping those rows and columns is what keeps peak finding
    cheap on mostly empty maps."""
    weights = _gaussian_weights(SMOOTHING_SIGMA, 4.0)
    radius = len(weights) // 2
    out = np.full(channel.shape, -np.inf)
    rows = _reachable(channel.max(axis=1), radius, threshold)
    if len(rows):
        vertical = _correlate_at(channel, rows, weights, 0)
        cols = _reachable(vertical.max(axis=0), radius, threshold)
        if len(cols):
            out[np.ix_(rows, cols)] = _correlate_at(vertical, cols, weights, 1)
    return out


def find_peaks(heatmaps: np.ndarray, threshold: float = PEAK_THRESHOLD) -> list[np.ndarray]:
    """Per channel of H x W x C ``heatmaps``: the peaks as a K x 4 array (x, y, score, id), the reference's
    ``all_peaks``.

    A peak is ``>=`` its four neighbours in the smoothed map (0 outside) and ``> threshold``; its score is the
    unsmoothed value; ids run over all channels in channel order, row-major within a channel.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must be H x W x C, got shape {heatmaps.shape}")
    tables = []
    first_id = 0
    for channel_map in np.ascontiguousarray(heatmaps.transpose(2, 0, 1)):
        smooth = _smooth_above(channel_map, threshold)
        peaks = smooth > threshold
        peaks[1:] &= smooth[1:] >= smooth[:-1]
        peaks[:-1] &= smooth[:-1] >= smooth[1:]
        peaks[:, 1:] &= smooth[:, 1:] >= smooth[:, :-1]
        peaks[:, :-1] &= smooth[:, :-1] >= smooth[:, 1:]
        ys, xs = np.nonzero(peaks)
        ids = np.arange(first_id, first_id + len(xs))
        tables.append(np.stack([xs, ys, channel_map[ys, xs], ids], axis=1).astype(np.float64))
        first_id += len(xs)
    return tables


def _limb_candidates(
    peaks_a: np.ndarray, peaks_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, image_height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every pair (nA x nB) and whether each pair passes both criteria."""
    xa, ya = peaks_a[:, 0, None], peaks_a[:, 1, None]
    xb, yb = peaks_b[None, :, 0], peaks_b[None, :, 1]
    dx, dy = xb - xa, yb - ya
    norm = np.maximum(0.001, np.sqrt(dx * dx + dy * dy))
    ux, uy = dx / norm, dy / norm
    steps = np.arange(PAF_SAMPLES, dtype=np.float64)
    # np.linspace(a, b, 10) as the reference calls it per pair: arange * ((b - a) / 9) + a, last sample = b.
    sample_x = steps * (dx / (PAF_SAMPLES - 1))[..., None] + xa[..., None]
    sample_y = steps * (dy / (PAF_SAMPLES - 1))[..., None] + ya[..., None]
    sample_x[..., -1] = np.broadcast_to(xb, dx.shape)
    sample_y[..., -1] = np.broadcast_to(yb, dy.shape)
    cols, rows = np.rint(sample_x).astype(np.intp), np.rint(sample_y).astype(np.intp)
    along = paf_x[rows, cols] * ux[..., None] + paf_y[rows, cols] * uy[..., None]
    total = np.zeros(dx.shape)
    for sample in range(PAF_SAMPLES):  # the reference's built-in sum(): left to right
        total = total + along[..., sample]
    score = total / PAF_SAMPLES + np.minimum(0.5 * image_height / norm - 1, 0)
    enough = np.count_nonzero(along > PAF_THRESHOLD, axis=-1) > 0.8 * PAF_SAMPLES
    return score, enough & (score > 0)


def connect_limbs(peaks: Sequence[np.ndarray], pafs: np.ndarray, image_height: int) -> list[np.ndarray | None]:
    """Per limb: the chosen connections as a K x 5 array (id A, id B, score, index in A, index in B), in the
    order the greedy matching took them; ``None`` where a part of the limb has no peak (``special_k``)."""
    connections: list[np.ndarray | None] = []
    for (part_a, part_b), (channel_x, channel_y) in zip(LIMBS, LIMB_PAF_CHANNELS, strict=True):
        cand_a, cand_b = peaks[part_a], peaks[part_b]
        if len(cand_a) == 0 or len(cand_b) == 0:
            connections.append(None)
            continue
        score, valid = _limb_candidates(cand_a, cand_b, pafs[:, :, channel_x], pafs[:, :, channel_y], image_height)
        index_a, index_b = np.nonzero(valid)
        order = np.argsort(-score[index_a, index_b], kind="stable")
        used_a: set[int] = set()
        used_b: set[int] = set()
        rows: list[list[float]] = []
        limit = min(len(cand_a), len(cand_b))
        for i, j in zip(index_a[order].tolist(), index_b[order].tolist(), strict=True):
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            rows.append([cand_a[i, 3], cand_b[j, 3], score[i, j], i, j])
            if len(rows) >= limit:
                break
        connections.append(np.array(rows, dtype=np.float64).reshape(-1, 5))
    return connections


def assemble_people(connections: Sequence[np.ndarray | None], candidates: np.ndarray) -> np.ndarray:
    """Join limb connections into people: the reference's ``subset`` (P x 20: 18 peak ids or -1, total score,
    part count), after its deletion rule (fewer than 4 parts or a mean score per part below 0.4).

    Where a connection touches three people (the reference fails there with an IndexError) the first two,
    in person order, are used.
    """
    subset = np.full((0, BODY_PARTS + 2), -1.0)
    for k, ((part_a, part_b), found_rows) in enumerate(zip(LIMBS, connections, strict=True)):
        if found_rows is None:
            continue
        for id_a, id_b, limb_score in found_rows[:, :3].tolist():
            matches = np.nonzero((subset[:, part_a] == id_a) | (subset[:, part_b] == id_b))[0][:2]
            if len(matches) == 1:
                person = subset[matches[0]]
                if person[part_b] != id_b:
                    person[part_b] = id_b
                    person[-1] += 1
                    person[-2] += candidates[int(id_b), 2] + limb_score
            elif len(matches) == 2:
                first, second = subset[matches[0]], subset[matches[1]]
                shared = np.count_nonzero((first[:-2] >= 0) & (second[:-2] >= 0))
                if shared == 0:
                    first[:-2] += second[:-2] + 1
                    first[-2:] += second[-2:]
                    first[-2] += limb_score
                    subset = np.delete(subset, matches[1], 0)
                else:
                    first[part_b] = id_b
                    first[-1] += 1
                    first[-2] += candidates[int(id_b), 2] + limb_score
            elif k < NEW_PERSON_LIMBS:
                row = np.full(BODY_PARTS + 2, -1.0)
                row[part_a], row[part_b] = id_a, id_b
                row[-1] = 2
                row[-2] = candidates[int(id_a), 2] + candidates[int(id_b), 2] + limb_score
                subset = np.vstack([subset, row])
    weak = (subset[:, -1] < 4) | (subset[:, -2] / subset[:, -1] < 0.4)
    return subset[~weak]


def _check_maps(maps: np.ndarray, channels: int, name: str) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[2] != channels:
        raise ValueError(f"{name} must be H x W x {channels} (channels last, at image resolution), got {maps.shape}")
    return maps


def decode_body(heatmaps: np.ndarray, pafs: np.ndarray, image_height: int | None = None) -> BodyPose:
    """Decode OpenPose body maps into people, exactly as the reference's ``Body.__call__`` after the network.

    ``heatmaps`` H x W x 19 and ``pafs`` H x W x 38 at image resolution, in the network's channel order
    (the reference's ``heatmap_avg`` and ``paf_avg``); ``image_height`` (default H) enters only the distance
    prior. See :class:`BodyPose` for the result.
    """
    heatmaps = _check_maps(heatmaps, BODY_PARTS + 1, "heatmaps")
    pafs = _check_maps(pafs, 2 * len(LIMBS), "pafs")
    if pafs.shape[:2] != heatmaps.shape[:2]:
        raise ValueError(f"heatmaps {heatmaps.shape[:2]} and pafs {pafs.shape[:2]} must have the same H x W")
    height = heatmaps.shape[0] if image_height is None else int(image_height)
    if height <= 0:
        raise ValueError(f"image_height must be positive, got {image_height}")
    peaks = find_peaks(heatmaps[:, :, :BODY_PARTS])
    candidates = np.concatenate(peaks, axis=0)
    subset = assemble_people(connect_limbs(peaks, pafs, height), candidates)
    ids = subset[:, :BODY_PARTS].astype(np.intp)
    keypoints = np.where((ids >= 0)[..., None], candidates[np.maximum(ids, 0), :3], [-1.0, -1.0, 0.0])
    return BodyPose(
        keypoints=keypoints.reshape(len(subset), BODY_PARTS, 3),
        scores=subset[:, -2].copy(),
        part_counts=subset[:, -1].copy(),
        candidates=candidates,
        subset=subset,
    )


def hand_boxes(keypoints: np.ndarray, image_height: int, image_width: int) -> list[HandBox]:
    """Hand crops from OpenPose-18 arm keypoints (P x 18 x 2+, missing parts with x < 0), as ``handDetect``.

    Per person with a complete arm (shoulder, elbow, wrist): the box is centred a third of the forearm
    beyond the wrist, its side ``1.5 * max(|wrist - elbow|, 0.9 * |elbow - shoulder|)``, moved inside the
    top-left corner and shrunk to the image; boxes under 20 pixels are dropped. Left hand before right.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[1] != BODY_PARTS or keypoints.shape[2] < 2:
        raise ValueError(f"keypoints must be P x {BODY_PARTS} x (2 or 3), got shape {keypoints.shape}")
    boxes = []
    for person, points in enumerate(keypoints):
        for arm, is_left in ((LEFT_ARM, True), (RIGHT_ARM, False)):
            if np.any(points[list(arm), 0] < 0):
                continue
            (x1, y1), (x2, y2), (x3, y3) = points[list(arm), :2].tolist()
            x = x3 + WRIST_ELBOW_RATIO * (x3 - x2)
            y = y3 + WRIST_ELBOW_RATIO * (y3 - y2)
            wrist_elbow = math.sqrt((x3 - x2) ** 2 + (y3 - y2) ** 2)
            elbow_shoulder = math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
            side = 1.5 * max(wrist_elbow, 0.9 * elbow_shoulder)
            x = max(x - side / 2, 0)
            y = max(y - side / 2, 0)
            side_x = image_width - x if x + side > image_width else side
            side_y = image_height - y if y + side > image_height else side
            side = min(side_x, side_y)
            if side >= MIN_HAND_BOX:
                boxes.append(HandBox(x=int(x), y=int(y), size=int(side), is_left=is_left, person=person))
    return boxes


def _components_in_raster_order(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels of ``mask``, numbered 1.. by each component's first pixel in raster order."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    values, first = np.unique(labels.ravel(), return_index=True)
    order = np.zeros(count, dtype=np.int32)
    foreground = values > 0
    order[values[foreground][np.argsort(first[foreground])]] = np.arange(1, np.count_nonzero(foreground) + 1)
    return order[labels]


def decode_hand(heatmaps: np.ndarray, threshold: float = HAND_THRESHOLD) -> np.ndarray:
    """21 x 3 hand keypoints (x, y, score) from H x W x 22 hand maps (or H x W x 21), as the reference's
    ``Hand.__call__`` after the network.

    Per channel: the smoothed map ``> threshold`` is split into 8-connected components; the one with the largest
    sum of the unsmoothed map is kept (the first in raster order on ties) and the keypoint is the first maximum
    of the unsmoothed map with everything outside it set to 0; the score is that value. A channel with nothing
    above the threshold gives ``(-1, -1, 0)`` (the reference writes ``[0, 0]``).
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim != 3 or heatmaps.shape[2] not in (HAND_PARTS, HAND_PARTS + 1):
        raise ValueError(f"heatmaps must be H x W x {HAND_PARTS + 1} (channels last), got shape {heatmaps.shape}")
    keypoints = np.tile([-1.0, -1.0, 0.0], (HAND_PARTS, 1))
    for part, original in enumerate(np.ascontiguousarray(heatmaps[:, :, :HAND_PARTS].transpose(2, 0, 1))):
        binary = _smooth_above(original, threshold) > threshold
        if not binary.any():
            continue
        labels = _components_in_raster_order(binary)
        masses = [np.sum(original[labels == label]) for label in range(1, int(labels.max()) + 1)]
        kept = np.where(labels == int(np.argmax(masses)) + 1, original, 0.0)
        y, x = np.unravel_index(int(np.argmax(kept)), kept.shape)
        keypoints[part] = (x, y, kept[y, x])
    return keypoints


def scale_factors(image_height: int, scales: Sequence[float], box_size: int) -> list[float]:
    """Resize factors of the reference's multi-scale search: ``scale * box_size / image_height`` each."""
    if image_height <= 0:
        raise ValueError(f"image_height must be positive, got {image_height}")
    return [scale * box_size / image_height for scale in scales]


def pad_right_down(image: np.ndarray, stride: int, pad_value: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Pad H x W x C ``image`` at the bottom and right to multiples of ``stride`` with ``pad_value``
    (``padRightDownCorner``); returns the padded image and the padding (up, left, down, right)."""
    down = -image.shape[0] % stride
    right = -image.shape[1] % stride
    padded = np.pad(image, ((0, down), (0, right), (0, 0)), mode="constant", constant_values=pad_value)
    return padded, (0, 0, down, right)


def network_input(
    image_bgr: np.ndarray, factor: float, stride: int, pad_value: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR uint8 H x W x 3 image -> the network's 1 x 3 x h x w float32 input at ``factor`` (bicubic resize,
    padded to ``stride``, ``/ 256 - 0.5``) and the padding, as the reference prepares ``imageToTest_padded``."""
    resized = cv2.resize(image_bgr, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    padded, pad = pad_right_down(resized, stride, pad_value)
    tensor = np.float32(padded).transpose(2, 0, 1)[None] / 256 - 0.5
    return np.ascontiguousarray(tensor), pad


def maps_to_image(
    maps: np.ndarray, pad: tuple[int, int, int, int], stride: int, image_height: int, image_width: int
) -> np.ndarray:
    """C x h x w network maps (stride ``stride`` on the padded input) -> H x W x C at the image's size:
    bicubic upsampling by ``stride``, the padding cropped, bicubic resize to the image (as the reference)."""
    channels_last = np.ascontiguousarray(np.asarray(maps, dtype=np.float32).transpose(1, 2, 0))
    up = cv2.resize(channels_last, (0, 0), fx=stride, fy=stride, interpolation=cv2.INTER_CUBIC)
    if up.ndim == 2:
        up = up[:, :, None]
    cropped = np.ascontiguousarray(up[: up.shape[0] - pad[2], : up.shape[1] - pad[3], :])
    restored = cv2.resize(cropped, (image_width, image_height), interpolation=cv2.INTER_CUBIC)
    return restored if restored.ndim == 3 else restored[:, :, None]
