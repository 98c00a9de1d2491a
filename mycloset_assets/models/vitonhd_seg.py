"""VITON-HD segmentation generator (Choi et al., "VITON-HD", CVPR 2021), stage 1 of the try-on.

A U-Net predicts the person's 13-class parsing after the try-on from the cloth-agnostic parsing, the pose
image, the cloth, its mask and a noise channel, at 256x192: five encoder stages of two 3x3 conv /
InstanceNorm / ReLU (max-pooled between them, dropout after the two deepest), four decoder stages that
upsample (nearest, then conv) and fuse the skip connection, and a last 3x3 conv to the classes with a
sigmoid.

Reference: shadow2496/VITON-HD@02afa4b, networks.py (`SegGenerator(opt, 21, 13)`); the instance norms are
affine-free, so the file holds only convolution weights and biases.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_norm_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    """3x3 conv (padding 1), affine-free instance norm, ReLU."""
    return [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.InstanceNorm2d(out_ch), nn.ReLU()]


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two conv / norm / ReLU layers: one U-Net stage."""
    return nn.Sequential(*conv_norm_relu(in_ch, out_ch), *conv_norm_relu(out_ch, out_ch))


def up_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest x2 upsampling followed by conv / norm / ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *conv_norm_relu(in_ch, out_ch))


class SegGenerator(nn.Module):
    """U-Net from the 21-channel condition to per-class sigmoid probabilities (H, W divisible by 16)."""

    def __init__(self, input_nc: int = 21, output_nc: int = 13) -> None:
        super().__init__()
        self.conv1 = double_conv(input_nc, 64)
        self.conv2 = double_conv(64, 128)
        self.conv3 = double_conv(128, 256)
        self.conv4 = double_conv(256, 512)
        self.conv5 = double_conv(512, 1024)

        self.up6 = up_conv(1024, 512)
        self.conv6 = double_conv(1024, 512)
        self.up7 = up_conv(512, 256)
        self.conv7 = double_conv(512, 256)
        self.up8 = up_conv(256, 128)
        self.conv8 = double_conv(256, 128)
        self.up9 = up_conv(128, 64)
        self.conv9 = nn.Sequential(
            *conv_norm_relu(128, 64),
            *conv_norm_relu(64, 64),
            nn.Conv2d(64, output_nc, kernel_size=3, padding=1),
        )

        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        """N x input_nc x H x W -> N x output_nc x H x W probabilities (sigmoid, not softmax)."""
        conv1 = self.conv1(x)
        conv2 = self.conv2(self.pool(conv1))
        conv3 = self.conv3(self.pool(conv2))
        conv4 = self.drop(self.conv4(self.pool(conv3)))
        conv5 = self.drop(self.conv5(self.pool(conv4)))

        conv6 = self.conv6(torch.cat((conv4, self.up6(conv5)), 1))
        conv7 = self.conv7(torch.cat((conv3, self.up7(conv6)), 1))
        conv8 = self.conv8(torch.cat((conv2, self.up8(conv7)), 1))
        conv9 = self.conv9(torch.cat((conv1, self.up9(conv8)), 1))
        return torch.sigmoid(conv9)
