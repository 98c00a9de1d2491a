"""The pose and parsing wrappers refuse, before any resize, a photo whose proportions would make their
network input unbounded (the working-size rule of ``vision/images.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import load_model
from mycloset_assets.vision.images import WorkingSizeError
from mycloset_assets.wrappers.openpose import OpenPoseBodyWrapper
from mycloset_assets.wrappers.parsing import DeepLabSegmenter

STRIP = np.full((10, 2000, 3), 200, dtype=np.uint8)


def test_openpose_refuses_a_strip_before_scaling_it(synth_file):
    body = OpenPoseBodyWrapper(load_model(synth_file("openpose_body_coco18")))
    with pytest.raises(WorkingSizeError, match="2000 x 10 pixels is 200.0 times longer than wide"):
        body(STRIP)


def test_deeplab_refuses_a_strip_before_resizing_its_shorter_side(synth_file):
    segmenter = DeepLabSegmenter(load_model(synth_file("torchvision_deeplabv3_resnet101")))
    assert segmenter.resize_shorter_side == 520
    with pytest.raises(WorkingSizeError, match="beyond the limit of 4"):
        segmenter.prepare(torch.from_numpy(STRIP).permute(2, 0, 1)[None].float())
