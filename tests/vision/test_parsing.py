"""Parsing label sets: every id of every set maps to exactly the expected parts; masks; SCHP's affine crop."""

from __future__ import annotations

import numpy as np
import pytest

from mycloset_assets.checkpoints import load_registry
from mycloset_assets.vision.parsing import (
    PARTS,
    LabelSet,
    LabelSetError,
    MissingPartError,
    ParsingResult,
    UnknownPartError,
    canonical_name,
    get_label_set,
    label_set_for,
    label_sets,
    schp_affine,
    schp_center_scale,
    warp_image,
    warp_logits_back,
)


def person(*parts: str) -> frozenset[str]:
    return frozenset(("person", *parts))


BACKGROUND = frozenset({"background"})
HEAD = {
    "hat": person("head", "hat"),
    "hair": person("head", "hair"),
    "sunglasses": person("head", "sunglasses"),
    "face": person("head", "face"),
}
LIMBS = {
    "left_arm": person("arms", "left_arm"),
    "right_arm": person("arms", "right_arm"),
    "left_leg": person("legs", "left_leg"),
    "right_leg": person("legs", "right_leg"),
    "left_shoe": person("shoes", "left_shoe"),
    "right_shoe": person("shoes", "right_shoe"),
}
LIP_20 = [
    BACKGROUND,
    HEAD["hat"],
    HEAD["hair"],
    person("gloves"),
    HEAD["sunglasses"],
    person("upper", "garments"),
    person("dress", "full", "garments"),
    person("outerwear", "garments"),
    person("socks"),
    person("pants", "lower", "garments"),
    person("full", "garments"),  # Jumpsuits
    person("scarf"),
    person("skirt", "lower", "garments"),
    HEAD["face"],
    LIMBS["left_arm"],
    LIMBS["right_arm"],
    LIMBS["left_leg"],
    LIMBS["right_leg"],
    LIMBS["left_shoe"],
    LIMBS["right_shoe"],
]
CIHP_20 = [*LIP_20[:10], person("torso_skin"), *LIP_20[11:]]
ATR_18 = [
    BACKGROUND,
    HEAD["hat"],
    HEAD["hair"],
    HEAD["sunglasses"],
    person("upper", "garments"),
    person("skirt", "lower", "garments"),
    person("pants", "lower", "garments"),
    person("dress", "full", "garments"),
    person("belt"),
    LIMBS["left_shoe"],
    LIMBS["right_shoe"],
    HEAD["face"],
    LIMBS["left_leg"],
    LIMBS["right_leg"],
    LIMBS["left_arm"],
    LIMBS["right_arm"],
    person("bag"),
    person("scarf"),
]
PASCAL_7 = [
    BACKGROUND,
    person("head"),
    person("torso"),
    person("arms", "upper_arms"),
    person("arms", "lower_arms"),
    person("legs", "upper_legs"),
    person("legs", "lower_legs"),
]
VOC_21 = [BACKGROUND, *[frozenset()] * 14, frozenset({"person"}), *[frozenset()] * 5]
CLOTH_SEG_4 = [
    BACKGROUND,
    frozenset({"upper", "garments"}),
    frozenset({"lower", "garments"}),
    frozenset({"full", "garments"}),
]
EXPECTED = {
    "LIP-20": LIP_20,
    "CIHP-20": CIHP_20,
    "ATR-18": ATR_18,
    "Pascal-Person-Part-7": PASCAL_7,
    "VOC-21": VOC_21,
    "ClothSeg-4": CLOTH_SEG_4,
}


def test_every_label_set_with_names_is_covered() -> None:
    assert sorted(label_sets()) == sorted(EXPECTED)
    assert {name: s.num_classes for name, s in label_sets().items()} == {n: len(t) for n, t in EXPECTED.items()}


@pytest.mark.parametrize("name", EXPECTED)
def test_every_id_maps_to_exactly_the_expected_parts(name: str) -> None:
    label_set = get_label_set(name)
    for label_id, parts in enumerate(EXPECTED[name]):
        assert label_set.parts_of(label_id) == parts, f"{name} id {label_id} ({label_set.names[label_id]})"


@pytest.mark.parametrize("name", EXPECTED)
def test_part_tables_are_the_inverse_of_the_id_table(name: str) -> None:
    label_set = get_label_set(name)
    for part in PARTS:
        want = tuple(i for i, parts in enumerate(EXPECTED[name]) if part in parts)
        assert label_set.ids(part) == want, f"{name}: {part}"
    assert label_set.table == {part: label_set.ids(part) for part in PARTS}


@pytest.mark.parametrize(
    ("name", "part", "ids"),
    [
        ("LIP-20", "upper", (5,)),
        ("LIP-20", "lower", (9, 12)),
        ("LIP-20", "full", (6, 10)),
        ("LIP-20", "garments", (5, 6, 7, 9, 10, 12)),
        ("LIP-20", "head", (1, 2, 4, 13)),
        ("CIHP-20", "full", (6,)),
        ("CIHP-20", "torso_skin", (10,)),
        ("ATR-18", "lower", (5, 6)),
        ("ATR-18", "dress", (7,)),
        ("ATR-18", "shoes", (9, 10)),
        ("ATR-18", "arms", (14, 15)),
        ("ATR-18", "legs", (12, 13)),
        ("ATR-18", "face", (11,)),
        ("Pascal-Person-Part-7", "arms", (3, 4)),
        ("VOC-21", "person", (15,)),
        ("ClothSeg-4", "full", (3,)),
    ],
)
def test_known_part_ids(name: str, part: str, ids: tuple[int, ...]) -> None:
    assert get_label_set(name).ids(part) == ids


def test_missing_parts_are_reported_per_set() -> None:
    assert "neck" in get_label_set("LIP-20").missing_parts
    atr = set(get_label_set("ATR-18").missing_parts)
    assert {"outerwear", "gloves", "socks", "torso_skin", "neck"} <= atr
    assert not {"belt", "bag", "upper", "lower", "dress", "shoes"} & atr
    assert {"torso_skin", "belt", "bag"} <= set(get_label_set("LIP-20").missing_parts)
    pascal = set(get_label_set("Pascal-Person-Part-7").missing_parts)
    assert {"upper", "lower", "garments", "face", "hair", "shoes"} <= pascal
    assert set(get_label_set("VOC-21").missing_parts) == set(PARTS) - {"background", "person"}


@pytest.mark.parametrize(
    ("name", "pairs"),
    [
        ("LIP-20", ((14, 15), (16, 17), (18, 19))),
        ("CIHP-20", ((14, 15), (16, 17), (18, 19))),
        ("ATR-18", ((9, 10), (12, 13), (14, 15))),
        ("Pascal-Person-Part-7", ()),
        ("ClothSeg-4", ()),
    ],
)
def test_flip_pairs_come_from_left_right_names(name: str, pairs: tuple[tuple[int, int], ...]) -> None:
    assert get_label_set(name).flip_pairs == pairs


def test_lip_flip_permutation_is_the_references_flipped_index() -> None:
    # SCHP evaluate.py: flipped_output[14:20] = flipped_output[(15, 14, 17, 16, 19, 18)]
    assert get_label_set("LIP-20").flip_permutation == (*range(14), 15, 14, 17, 16, 19, 18)


def test_label_set_names_are_compared_canonically() -> None:
    assert get_label_set("voc21").name == "VOC-21"
    assert get_label_set("cloth_seg4").name == "ClothSeg-4"
    assert get_label_set("lip_20") is get_label_set("LIP-20")
    with pytest.raises(LabelSetError, match=r"unknown label set 'saliency'; known: LIP-20, ATR-18"):
        get_label_set("saliency")


def test_every_registry_label_block_resolves_to_its_set() -> None:
    known = {canonical_name(name) for name in label_sets()}
    resolved, elsewhere = {}, set()
    for entry in load_registry().values():
        if not entry.labels:
            continue
        if canonical_name(entry.labels["set"]) not in known:
            elsewhere.add(entry.labels["set"])
            continue
        label_set = label_set_for(entry.labels)
        resolved[entry.id] = label_set.name
        if "num_classes" in entry.args:
            assert label_set.num_classes == entry.args["num_classes"], entry.id
    assert resolved == {
        "schp_lip20": "LIP-20",
        "schp_atr18": "ATR-18",
        "graphonomy_cihp20": "CIHP-20",
        "cpvton_gmm": "LIP-20",
        "cpvton_tom": "LIP-20",
        "deeplabv3plus_mobilenet_voc": "VOC-21",
        "deeplabv3plus_resnet101_voc": "VOC-21",
        "torchvision_deeplabv3_resnet101": "VOC-21",
        "u2net_cloth_seg4": "ClothSeg-4",
    }
    assert elsewhere == {"imagenet1k", "saliency", "VITON-HD-7", "VITON-HD-13"}


def test_a_labels_block_that_disagrees_is_refused() -> None:
    with pytest.raises(LabelSetError, match=r"differ from ClothSeg-4's"):
        label_set_for({"set": "cloth_seg4", "names": ["background", "lower_body", "upper_body", "full_body"]})
    with pytest.raises(LabelSetError, match=r"needs a 'set' name"):
        label_set_for({"names": ["a"]})


def lip_map() -> np.ndarray:
    """A 3 x 4 LIP label map with hair, face, upper clothes, a coat, pants, a skirt and both shoes."""
    return np.array([[2, 13, 0, 7], [5, 5, 0, 7], [9, 12, 18, 19]], dtype=np.uint8)


def test_masks_select_exactly_the_part_pixels() -> None:
    result = ParsingResult(lip_map(), "LIP-20", get_label_set("LIP-20").names)
    np.testing.assert_array_equal(result.mask("upper"), [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.mask("lower"), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(result.mask("outerwear"), [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.mask("head"), [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.mask("left_shoe"), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(result.mask("upper", "shoes"), [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
    np.testing.assert_array_equal(result.mask("background"), lip_map() == 0)
    np.testing.assert_array_equal(result.mask("person"), lip_map() != 0)
    assert result.mask("upper").dtype == bool
    assert result.present() == {
        "Background": 2,
        "Hair": 1,
        "Upper-clothes": 2,
        "Coat": 2,
        "Pants": 1,
        "Skirt": 1,
        "Face": 1,
        "Left-shoe": 1,
        "Right-shoe": 1,
    }


def test_same_ids_mean_other_parts_in_atr() -> None:
    labels = np.array([[4, 5, 6, 7]], dtype=np.uint8)
    result = ParsingResult(labels, "ATR-18", get_label_set("ATR-18").names)
    np.testing.assert_array_equal(result.mask("upper"), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(result.mask("lower"), [[0, 1, 1, 0]])
    np.testing.assert_array_equal(result.mask("dress"), [[0, 0, 0, 1]])


def test_a_part_the_set_lacks_is_an_error_unless_allowed() -> None:
    result = ParsingResult(np.array([[4, 0]], dtype=np.uint8), "ATR-18", get_label_set("ATR-18").names)
    with pytest.raises(MissingPartError, match=r"ATR-18 has no label for part 'outerwear' \(its parts: background,"):
        result.mask("outerwear")
    np.testing.assert_array_equal(result.mask("upper", "outerwear", allow_missing=True), [[True, False]])
    np.testing.assert_array_equal(result.mask("neck", allow_missing=True), [[False, False]])
    with pytest.raises(UnknownPartError, match=r"unknown part 'sleeves'; known parts: background, person"):
        result.mask("sleeves")
    with pytest.raises(UnknownPartError, match=r"name at least one part"):
        result.mask()


def test_parsing_result_validates_its_label_map() -> None:
    names = get_label_set("ClothSeg-4").names
    with pytest.raises(ValueError, match=r"labels hold ids 0\.\.4 but ClothSeg-4 has 4 names"):
        ParsingResult(np.array([[0, 4]], dtype=np.uint8), "ClothSeg-4", names)
    with pytest.raises(ValueError, match=r"H x W integer array, got float32 \(2, 2\)"):
        ParsingResult(np.zeros((2, 2), dtype=np.float32), "ClothSeg-4", names)
    with pytest.raises(ValueError, match=r"H x W integer array, got uint8 \(2, 2, 1\)"):
        ParsingResult(np.zeros((2, 2, 1), dtype=np.uint8), "ClothSeg-4", names)


def test_parts_of_rejects_ids_outside_the_set() -> None:
    with pytest.raises(IndexError, match=r"VOC-21 has ids 0\.\.20, not 21"):
        get_label_set("VOC-21").parts_of(21)


def test_custom_names_get_tables_from_the_same_rules() -> None:
    custom = LabelSet("custom", ("bg", "Upper Clothes", "COAT"))
    assert custom.table["garments"] == (1, 2)
    assert custom.ids("background") == ()  # "bg" is not a known name


# --- SCHP affine -----------------------------------------------------------------------------------------


def test_center_and_box_widen_to_the_input_aspect() -> None:
    center, scale = schp_center_scale(40, 30, (473, 473))
    np.testing.assert_array_equal(center, [14.5, 19.5])
    np.testing.assert_array_equal(scale, [39.0, 39.0])
    center, scale = schp_center_scale(11, 21, (64, 48))  # box 20 x 10, aspect 0.75 -> height 20 / 0.75
    np.testing.assert_array_equal(center, [10.0, 5.0])
    np.testing.assert_allclose(scale, [20.0, 20.0 / 0.75], rtol=1e-7)
    with pytest.raises(ValueError, match=r"at least 2 x 2 pixels for the SCHP affine, got 1 x 5"):
        schp_center_scale(1, 5, (473, 473))


def test_affine_maps_the_long_side_onto_the_input_corners() -> None:
    # 30 wide x 40 high into 473 x 473: scale 472 / 39; y 0 -> 0 and y 39 -> 472; the centre to 236.
    center, scale = schp_center_scale(40, 30, (473, 473))
    k = 472 / 39
    forward = schp_affine(center, scale, (473, 473))
    np.testing.assert_allclose(forward, [[k, 0, 236 - 14.5 * k], [0, k, 0]], atol=1e-4)
    inverse = schp_affine(center, scale, (473, 473), inverse=True)
    np.testing.assert_allclose(inverse @ np.array([236.0, 472.0, 1.0]), [14.5, 39.0], atol=1e-4)
    np.testing.assert_allclose(inverse[:, :2] @ forward[:, :2], np.eye(2), atol=1e-6)


def test_same_size_crop_is_the_image_itself() -> None:
    image = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    center, scale = schp_center_scale(7, 9, (7, 9))
    forward = schp_affine(center, scale, (7, 9))
    np.testing.assert_array_equal(forward, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(warp_image(image, forward, (7, 9)), image)


def test_wide_image_is_letterboxed_with_zero_rows() -> None:
    # 9 wide x 5 high into 9 x 9: box 8 x 4 -> 8 x 8, scale 1, rows shift down by 2.
    image = np.random.default_rng(1).integers(1, 256, (5, 9, 3), dtype=np.uint8)
    center, scale = schp_center_scale(5, 9, (9, 9))
    crop = warp_image(image, schp_affine(center, scale, (9, 9)), (9, 9))
    np.testing.assert_array_equal(crop[2:7], image)
    assert not crop[:2].any() and not crop[7:].any()
    logits = np.random.default_rng(2).standard_normal((9, 9, 4)).astype(np.float32)
    back = warp_logits_back(logits, schp_affine(center, scale, (9, 9), inverse=True), 5, 9)
    np.testing.assert_array_equal(back, logits[2:7])


def test_logits_come_back_interpolated_at_twice_the_size() -> None:
    # 17 x 17 photo into 9 x 9: photo pixel (x, y) reads crop (x / 2, y / 2).
    logits = np.random.default_rng(3).standard_normal((9, 9, 3)).astype(np.float32)
    center, scale = schp_center_scale(17, 17, (9, 9))
    back = warp_logits_back(logits, schp_affine(center, scale, (9, 9), inverse=True), 17, 17)
    assert back.shape == (17, 17, 3)
    np.testing.assert_allclose(back[::2, ::2], logits, atol=1e-6)
    np.testing.assert_allclose(back[1::2, ::2], (logits[:-1] + logits[1:]) / 2, atol=1e-5)
    with pytest.raises(ValueError, match=r"logits must be h x w x C, got shape \(9, 9\)"):
        warp_logits_back(logits[:, :, 0], np.eye(2, 3), 17, 17)
