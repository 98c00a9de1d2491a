"""OpenPose body (COCO-18) and hand networks, as Hzzone/pytorch-openpose builds them.

Body (Cao et al., CVPR 2017, Fig. 3): a VGG-19 front end (``model0``) gives features F; stage 1 runs two
branches on F (L1: 38 part-affinity-field channels, L2: 19 part-confidence channels); stages 2-6 each take
``[L1, L2, F]`` and refine both branches with 7x7 convolutions. Hand (Simon et al., CVPR 2017): the same
front end variant and six refinement stages of one branch (21 keypoints + background).

Layers keep the reference's Caffe names inside named ``nn.Sequential`` blocks, so the module keys are
``<block>.<layer>.<param>``; the published files omit the block prefix (see the registry's key rules).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

Layer = tuple[str, tuple[int, ...]]


def make_block(layers: list[Layer], no_relu: frozenset[str]) -> nn.Sequential:
    """Caffe-style block: ``(name, (in, out, kernel, stride, pad))`` convolutions, ``(name, (k, s, p))``
    pools, each convolution followed by a ReLU unless its name is in ``no_relu``."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for name, spec in layers:
        if "pool" in name:
            kernel, stride, padding = spec
            modules[name] = nn.MaxPool2d(kernel_size=kernel, stride=stride, padding=padding)
            continue
        in_ch, out_ch, kernel, stride, padding = spec
        modules[name] = nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=padding)
        if name not in no_relu:
            modules[f"relu_{name}"] = nn.ReLU(inplace=True)
    return nn.Sequential(modules)


def vgg_front(tail: list[Layer]) -> list[Layer]:
    """The first ten VGG-19 convolutions and three pools, then the network-specific tail."""
    return [
        ("conv1_1", (3, 64, 3, 1, 1)),
        ("conv1_2", (64, 64, 3, 1, 1)),
        ("pool1_stage1", (2, 2, 0)),
        ("conv2_1", (64, 128, 3, 1, 1)),
        ("conv2_2", (128, 128, 3, 1, 1)),
        ("pool2_stage1", (2, 2, 0)),
        ("conv3_1", (128, 256, 3, 1, 1)),
        ("conv3_2", (256, 256, 3, 1, 1)),
        ("conv3_3", (256, 256, 3, 1, 1)),
        ("conv3_4", (256, 256, 3, 1, 1)),
        ("pool3_stage1", (2, 2, 0)),
        ("conv4_1", (256, 512, 3, 1, 1)),
        ("conv4_2", (512, 512, 3, 1, 1)),
        *tail,
    ]


def refinement_stage(suffix: str, in_ch: int, out_ch: int) -> list[Layer]:
    """Stages 2-6: five 7x7 convolutions, then two 1x1 convolutions to the branch's output channels."""
    return [
        (f"Mconv1_{suffix}", (in_ch, 128, 7, 1, 3)),
        *[(f"Mconv{i}_{suffix}", (128, 128, 7, 1, 3)) for i in range(2, 6)],
        (f"Mconv6_{suffix}", (128, 128, 1, 1, 0)),
        (f"Mconv7_{suffix}", (128, out_ch, 1, 1, 0)),
    ]


class BodyPoseNet(nn.Module):
    """OpenPose body (``bodypose_model``): ``forward(x) -> (paf, heatmap)`` at stride 8.

    ``paf`` has 38 channels (19 limbs x (x, y)), ``heatmap`` 19 (18 keypoints + background). As in the
    reference, the last heatmap convolution keeps its ReLU (its ``no_relu_layers`` names the stage-6 PAF
    layer twice and the stage-6 heatmap layer never).
    """

    PAF_CHANNELS = 38
    HEATMAP_CHANNELS = 19
    STAGES = 6

    def __init__(self) -> None:
        super().__init__()
        no_relu = frozenset(
            ["conv5_5_CPM_L1", "conv5_5_CPM_L2"]
            + [f"Mconv7_stage{s}_L{b}" for s in range(2, 6) for b in (1, 2)]
            + ["Mconv7_stage6_L1"]
        )
        self.model0 = make_block(
            vgg_front([("conv4_3_CPM", (512, 256, 3, 1, 1)), ("conv4_4_CPM", (256, 128, 3, 1, 1))]), no_relu
        )
        for branch, out_ch in ((1, self.PAF_CHANNELS), (2, self.HEATMAP_CHANNELS)):
            first = [(f"conv5_{i}_CPM_L{branch}", (128, 128, 3, 1, 1)) for i in range(1, 4)] + [
                (f"conv5_4_CPM_L{branch}", (128, 512, 1, 1, 0)),
                (f"conv5_5_CPM_L{branch}", (512, out_ch, 1, 1, 0)),
            ]
            self.add_module(f"model1_{branch}", make_block(first, no_relu))
        stage_in = self.PAF_CHANNELS + self.HEATMAP_CHANNELS + 128
        for stage in range(2, self.STAGES + 1):
            for branch, out_ch in ((1, self.PAF_CHANNELS), (2, self.HEATMAP_CHANNELS)):
                layers = refinement_stage(f"stage{stage}_L{branch}", stage_in, out_ch)
                self.add_module(f"model{stage}_{branch}", make_block(layers, no_relu))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model0(x)
        paf, heatmap = self.model1_1(features), self.model1_2(features)
        for stage in range(2, self.STAGES + 1):
            joined = torch.cat([paf, heatmap, features], 1)
            paf = getattr(self, f"model{stage}_1")(joined)
            heatmap = getattr(self, f"model{stage}_2")(joined)
        return paf, heatmap


class HandPoseNet(nn.Module):
    """OpenPose hand (``handpose_model``): ``forward(x) -> heatmap`` with 22 channels at stride 8."""

    HEATMAP_CHANNELS = 22
    STAGES = 6

    def __init__(self) -> None:
        super().__init__()
        no_relu = frozenset(["conv6_2_CPM"] + [f"Mconv7_stage{s}" for s in range(2, self.STAGES + 1)])
        tail = [
            ("conv4_3", (512, 512, 3, 1, 1)),
            ("conv4_4", (512, 512, 3, 1, 1)),
            ("conv5_1", (512, 512, 3, 1, 1)),
            ("conv5_2", (512, 512, 3, 1, 1)),
            ("conv5_3_CPM", (512, 128, 3, 1, 1)),
        ]
        self.model1_0 = make_block(vgg_front(tail), no_relu)
        self.model1_1 = make_block(
            [("conv6_1_CPM", (128, 512, 1, 1, 0)), ("conv6_2_CPM", (512, self.HEATMAP_CHANNELS, 1, 1, 0))],
            no_relu,
        )
        for stage in range(2, self.STAGES + 1):
            layers = refinement_stage(f"stage{stage}", self.HEATMAP_CHANNELS + 128, self.HEATMAP_CHANNELS)
            self.add_module(f"model{stage}", make_block(layers, no_relu))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model1_0(x)
        heatmap = self.model1_1(features)
        for stage in range(2, self.STAGES + 1):
            heatmap = getattr(self, f"model{stage}")(torch.cat([heatmap, features], 1))
        return heatmap
