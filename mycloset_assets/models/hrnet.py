"""HRNet for top-down human pose estimation (Sun et al., CVPR 2019).

Reference: leoxiaobin/deep-high-resolution-net.pytorch ``lib/models/pose_hrnet.py``
(``PoseHighResolutionNet``). Module and attribute names follow the reference, so ``state_dict()`` keys equal
the published files' keys.

The network is a stem (two stride-2 convolutions and four bottlenecks), then three stages of
high-resolution modules. Stage ``s`` (2, 3, 4) has ``s`` parallel branches of ``width * 2**b`` channels at
stride ``4 * 2**b``; each module runs residual blocks on every branch and then fuses all branches into
each other. A transition before each stage adds the new lowest-resolution branch. A 1x1 (or 3x3)
convolution on the highest-resolution branch gives one heatmap per joint at stride 4.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

STAGE1_PLANES = 64
STAGE1_BLOCKS = 4


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv_bn(in_planes: int, out_planes: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    """Convolution (padding keeps the size at stride 1) followed by batch norm, as a list of layers."""
    conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_planes)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) conv-BN layers with an identity (or projected) shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def residual_blocks(
    block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, num_blocks: int
) -> nn.Sequential:
    """``num_blocks`` residual blocks at stride 1; the first projects its shortcut when channels change."""
    out_planes = planes * block.expansion
    downsample = None
    if inplanes != out_planes:
        downsample = nn.Sequential(*conv_bn(inplanes, out_planes, kernel_size=1))
    layers = [block(inplanes, planes, downsample=downsample)]
    layers += [block(out_planes, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def fuse_path(channels: Sequence[int], source: int, target: int) -> nn.Module:
    """Brings branch ``source`` to the resolution and width of branch ``target``.

    Lower resolution: 1x1 conv-BN, then nearest upsampling. Higher resolution: ``source - target``
    stride-2 3x3 conv-BN layers, with ReLU between them and width changed by the last one only.
    """
    if source == target:
        return nn.Identity()
    if source > target:
        upsample = nn.Upsample(scale_factor=2 ** (source - target), mode="nearest")
        return nn.Sequential(*conv_bn(channels[source], channels[target], kernel_size=1), upsample)
    c = channels[source]
    steps = [nn.Sequential(*conv_bn(c, c, 3, stride=2), nn.ReLU(True)) for _ in range(target - source - 1)]
    steps.append(nn.Sequential(*conv_bn(c, channels[target], 3, stride=2)))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel residual branches, then every output branch sums all branches brought to its resolution.

    With ``multi_scale_output=False`` (the network's last module) only the highest-resolution output is made.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(residual_blocks(BasicBlock, c, c, num_blocks) for c in channels)
        num_outputs = len(channels) if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(fuse_path(channels, j, i) for j in range(len(channels))) for i in range(num_outputs)
        )
        self.relu = nn.ReLU(True)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x, strict=True)]
        fused = []
        for paths in self.fuse_layers:
            y = paths[0](x[0])
            for path, xj in zip(paths[1:], x[1:], strict=True):
                y = y + path(xj)
            fused.append(self.relu(y))
        return fused


def transition_layer(pre_channels: Sequence[int], channels: Sequence[int]) -> nn.ModuleList:
    """Adapts the previous stage's branches to the next stage and adds its new, lower-resolution branch.

    A kept branch gets a 3x3 conv-BN-ReLU only when its width changes; a new branch is made from the
    lowest-resolution previous branch by stride-2 3x3 conv-BN-ReLU layers.
    """
    layers: list[nn.Module] = []
    for i, c in enumerate(channels):
        if i < len(pre_channels):
            if c == pre_channels[i]:
                layers.append(nn.Identity())
            else:
                layers.append(nn.Sequential(*conv_bn(pre_channels[i], c, 3), nn.ReLU(inplace=True)))
            continue
        steps = []
        for j in range(i + 1 - len(pre_channels)):
            out = c if j == i - len(pre_channels) else pre_channels[-1]
            steps.append(nn.Sequential(*conv_bn(pre_channels[-1], out, 3, stride=2), nn.ReLU(inplace=True)))
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class PoseHighResolutionNet(nn.Module):
    """HRNet-W``width`` pose network: image ``N x 3 x H x W`` -> heatmaps ``N x num_joints x H/4 x W/4``.

    Args:
        width: channels of the highest-resolution branch (32 for HRNet-W32, 48 for HRNet-W48); branch ``b``
            has ``width * 2**b`` channels.
        num_joints: heatmaps produced (17 COCO keypoints).
        num_modules: high-resolution modules in stages 2, 3 and 4 (the reference's ``NUM_MODULES``).
        num_blocks: basic blocks per branch in every module (the reference's ``NUM_BLOCKS`` entries).
        final_conv_kernel: kernel size of the heatmap convolution, 1 or 3.
    """

    def __init__(
        self,
        width: int = 32,
        num_joints: int = 17,
        num_modules: Sequence[int] = (1, 4, 3),
        num_blocks: int = 4,
        final_conv_kernel: int = 1,
    ):
        super().__init__()
        if len(num_modules) != 3:
            raise ValueError(f"num_modules gives stages 2, 3 and 4, got {list(num_modules)}")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = residual_blocks(Bottleneck, 64, STAGE1_PLANES, STAGE1_BLOCKS)

        pre_channels = [STAGE1_PLANES * Bottleneck.expansion]
        for stage, modules in enumerate(num_modules, start=2):
            channels = [width * 2**b for b in range(stage)]
            last_stage = stage == 4
            setattr(self, f"transition{stage - 1}", transition_layer(pre_channels, channels))
            hr_modules = [
                HighResolutionModule(channels, num_blocks, not (last_stage and m == modules - 1))
                for m in range(modules)
            ]
            setattr(self, f"stage{stage}", nn.Sequential(*hr_modules))
            pre_channels = channels
        self.final_layer = nn.Conv2d(
            width, num_joints, kernel_size=final_conv_kernel, padding=1 if final_conv_kernel == 3 else 0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Heatmaps; each transition's new branch starts from the previous stage's lowest-resolution output."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        for transition, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            y = stage([t(y[min(i, len(y) - 1)]) for i, t in enumerate(transition)])
        return self.final_layer(y[0])


def infer_hrnet_config(shapes: dict[str, tuple[int, ...]]) -> dict:
    """Constructor arguments of :class:`PoseHighResolutionNet` read from tensor shapes (module keys).

    Width and joints come from the heatmap convolution ``final_layer.weight`` (joints x width x k x k), the
    modules per stage from the ``stage{s}.{m}.`` indices, and the blocks per branch from stage 2's first
    branch. Raises ``ValueError`` when the shapes are not an HRNet pose network's.
    """
    final = shapes.get("final_layer.weight")
    if final is None or len(final) != 4:
        raise ValueError("no 4-d final_layer.weight: not an HRNet pose state dict")
    num_modules = []
    for stage in (2, 3, 4):
        indices = {int(m.group(1)) for k in shapes if (m := re.match(rf"stage{stage}\.(\d+)\.", k))}
        if not indices:
            raise ValueError(f"no stage{stage} modules: not an HRNet pose state dict")
        num_modules.append(max(indices) + 1)
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"stage2\.0\.branches\.0\.(\d+)\.", k))}
    if not blocks:
        raise ValueError("no stage2 branch blocks: not an HRNet pose state dict")
    return {
        "width": final[1],
        "num_joints": final[0],
        "num_modules": num_modules,
        "num_blocks": max(blocks) + 1,
        "final_conv_kernel": final[2],
    }
