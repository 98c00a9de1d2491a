"""The tests' reference for the written-out MediaPipe networks: a module that runs a ``.tflite`` file's own
operator graph in torch, op for op.

The graph (operators, their options and wiring, and every constant's name, torch-layout shape and dtype) is
``checkpoints.tflite.graph_spec`` of the file; the weights are this module's parameters, named exactly as in
the file. Activations run as N×C×H×W; operators whose meaning depends on
TFLite's N×H×W×C layout (reshape, padding, concatenation axes) translate it. Padding follows TensorFlow's
``SAME`` rule (extra pixel at the end), average pooling ignores padded pixels, and bilinear resizing
follows TFLite's align-corners / half-pixel / legacy sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mycloset_assets.models.tf_ops import depth_to_space, pad_same, same_pads

SAME, VALID = 0, 1
_ACTIVATIONS = {
    0: lambda x: x,
    1: F.relu,
    2: lambda x: x.clamp(-1.0, 1.0),
    3: F.relu6,
    4: torch.tanh,
}
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _source_coords(out_size: int, in_size: int, align_corners: bool, half_pixel: bool, device: torch.device):
    dst = torch.arange(out_size, dtype=torch.float32, device=device)
    if align_corners and out_size > 1:
        src = dst * ((in_size - 1) / (out_size - 1))
    elif half_pixel:
        src = (dst + 0.5) * (in_size / out_size) - 0.5
    else:
        src = dst * (in_size / out_size)
    floor = torch.floor(src)
    lower = floor.clamp(min=0).long()
    upper = torch.ceil(src).clamp(max=in_size - 1).long()
    return lower, upper, src - lower


def resize_bilinear(x: torch.Tensor, height: int, width: int, align_corners: bool, half_pixel: bool) -> torch.Tensor:
    """TFLite's RESIZE_BILINEAR on an N×C×H×W tensor (clamped lower/upper source pixels, linear weights).

    Half-pixel sampling without corner alignment is exactly torch's ``align_corners=False`` (and aligned
    corners torch's ``align_corners=True``), so those run as ``F.interpolate``."""
    if align_corners or half_pixel:
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=bool(align_corners))
    y0, y1, dy = _source_coords(height, x.shape[2], align_corners, half_pixel, x.device)
    x0, x1, dx = _source_coords(width, x.shape[3], align_corners, half_pixel, x.device)
    dy, dx = dy.to(x.dtype)[:, None], dx.to(x.dtype)[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - dx) + x[:, :, y0][:, :, :, x1] * dx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - dx) + x[:, :, y1][:, :, :, x1] * dx
    return top * (1 - dy) + bottom * dy


class _Value:
    """An activation and whether it is held as N×C×H×W (True) or in TFLite's own layout (False)."""

    __slots__ = ("tensor", "nchw")

    def __init__(self, tensor: torch.Tensor, nchw: bool) -> None:
        self.tensor, self.nchw = tensor, nchw

    def tflite(self) -> torch.Tensor:
        return self.tensor.permute(0, 2, 3, 1) if self.nchw else self.tensor

    def torch(self) -> torch.Tensor:
        if self.nchw or self.tensor.dim() != 4:
            return self.tensor
        return self.tensor.permute(0, 3, 1, 2)


class TFLiteGraphNet(nn.Module):
    """Runs one packaged TFLite graph; parameters carry the file's tensor names.

    ``forward(x)`` takes N×3×H×W float input (already normalised as the model expects) and returns the
    model's outputs in the file's output order; 4-D outputs come back N×C×H×W.
    """

    def __init__(self, graph: str, spec: Mapping[str, Any]) -> None:
        """``graph`` names the network; ``spec`` is its file's ``checkpoints.tflite.graph_spec``."""
        super().__init__()
        self.graph = graph
        self._nodes = spec["nodes"]
        self._inputs = spec["inputs"]
        self._outputs = spec["outputs"]
        self.output_names = spec["output_names"]
        self._constants = {int(k): v[0] for k, v in spec["constants"].items()}
        for name, shape, dtype in spec["constants"].values():
            tensor = torch.empty(shape, dtype=getattr(torch, dtype))
            if tensor.is_floating_point():
                self.register_parameter(name, nn.Parameter(tensor, requires_grad=False))
            else:
                self.register_buffer(name, tensor)

    def _constant(self, index: int) -> torch.Tensor:
        name = self._constants[index]
        return self._parameters[name] if name in self._parameters else self._buffers[name]  # type: ignore[return-value]

    def _ints(self, index: int) -> list[int]:
        return [int(v) for v in self._constant(index).reshape(-1).tolist()]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[int, _Value] = {self._inputs[0]: _Value(x, True)}
        for op, inputs, outputs, options in self._nodes:
            result = getattr(self, "_" + op.lower())(values, inputs, options)
            values[outputs[0]] = result
        outs = []
        for index in self._outputs:
            value = values[index]
            outs.append(value.torch() if value.tensor.dim() == 4 else value.tflite())
        return tuple(outs)

    def _value(self, values: dict[int, _Value], index: int) -> _Value:
        if index in self._constants:
            constant = self._constant(index)
            return _Value(constant, False)
        return values[index]

    def _conv_2d(self, values, inputs, options) -> _Value:
        x = values[inputs[0]].torch()
        weight = self._constant(inputs[1])
        bias = self._constant(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
        return _Value(self._convolve(x, weight, bias, options, groups=1), True)

    def _depthwise_conv_2d(self, values, inputs, options) -> _Value:
        x = values[inputs[0]].torch()
        weight = self._constant(inputs[1])
        bias = self._constant(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
        return _Value(self._convolve(x, weight, bias, options, groups=x.shape[1]), True)

    @staticmethod
    def _convolve(x, weight, bias, options, groups: int) -> torch.Tensor:
        stride = (options["stride_h"], options["stride_w"])
        dilation = (options["dilation_h"], options["dilation_w"])
        padding: tuple[int, int] | int = 0
        if options["padding"] == SAME:
            kernel = tuple(weight.shape[2:])
            rows = same_pads(x.shape[2], kernel[0], stride[0], dilation[0])
            cols = same_pads(x.shape[3], kernel[1], stride[1], dilation[1])
            if rows[0] == rows[1] and cols[0] == cols[1]:
                padding = (rows[0], cols[0])
            else:
                x = F.pad(x, (*cols, *rows))
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        return _ACTIVATIONS[options["activation"]](out)

    def _convolution2dtransposebias(self, values, inputs, options) -> _Value:
        x = values[inputs[0]].torch()
        weight, bias = self._constant(inputs[1]), self._constant(inputs[2])
        stride = (options["stride_h"], options["stride_w"])
        out = F.conv_transpose2d(x, weight, bias, stride)
        if options["padding"] == SAME:
            height, width = x.shape[2] * stride[0], x.shape[3] * stride[1]
            top = (out.shape[2] - height) // 2
            left = (out.shape[3] - width) // 2
            out = out[:, :, top : top + height, left : left + width]
        return _Value(out, True)

    def _pool(self, values, inputs, options, kind: str) -> _Value:
        x = values[inputs[0]].torch()
        kernel = (options["filter_h"], options["filter_w"])
        stride = (options["stride_h"], options["stride_w"])
        if options["padding"] == SAME and kind == "max":
            x = pad_same(x, kernel, stride, (1, 1), value=-math.inf)
            out = F.max_pool2d(x, kernel, stride)
        elif kind == "max":
            out = F.max_pool2d(x, kernel, stride)
        elif options["padding"] == SAME:
            summed = F.avg_pool2d(pad_same(x, kernel, stride, (1, 1)), kernel, stride, divisor_override=1)
            ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
            counts = F.avg_pool2d(pad_same(ones, kernel, stride, (1, 1)), kernel, stride, divisor_override=1)
            out = summed / counts
        else:
            out = F.avg_pool2d(x, kernel, stride)
        return _Value(_ACTIVATIONS[options["activation"]](out), True)

    def _max_pool_2d(self, values, inputs, options) -> _Value:
        return self._pool(values, inputs, options, "max")

    def _average_pool_2d(self, values, inputs, options) -> _Value:
        return self._pool(values, inputs, options, "average")

    def _elementwise(self, values, inputs, options, function) -> _Value:
        a, b = self._value(values, inputs[0]), self._value(values, inputs[1])
        if a.tensor.dim() == 4 and b.tensor.dim() == 4 and (a.nchw or b.nchw):
            out = _Value(function(a.torch(), b.torch()), True)
        else:
            out = _Value(function(a.tflite(), b.tflite()), False)
        out.tensor = _ACTIVATIONS[options.get("activation", 0)](out.tensor)
        return out

    def _add(self, values, inputs, options) -> _Value:
        return self._elementwise(values, inputs, options, torch.add)

    def _sub(self, values, inputs, options) -> _Value:
        return self._elementwise(values, inputs, options, torch.sub)

    def _mul(self, values, inputs, options) -> _Value:
        return self._elementwise(values, inputs, options, torch.mul)

    def _unary(self, values, inputs, function) -> _Value:
        value = values[inputs[0]]
        return _Value(function(value.tensor), value.nchw)

    def _relu(self, values, inputs, options) -> _Value:
        return self._unary(values, inputs, F.relu)

    def _relu6(self, values, inputs, options) -> _Value:
        return self._unary(values, inputs, F.relu6)

    def _logistic(self, values, inputs, options) -> _Value:
        return self._unary(values, inputs, torch.sigmoid)

    def _tanh(self, values, inputs, options) -> _Value:
        return self._unary(values, inputs, torch.tanh)

    def _hard_swish(self, values, inputs, options) -> _Value:
        return self._unary(values, inputs, F.hardswish)

    def _prelu(self, values, inputs, options) -> _Value:
        x = values[inputs[0]].torch()
        alpha = self._constant(inputs[1])
        if alpha.shape[1:].numel() == 1:
            return _Value(F.prelu(x, alpha.reshape(-1)), True)
        return _Value(torch.where(x >= 0, x, x * alpha), True)

    def _pad(self, values, inputs, options) -> _Value:
        value = values[inputs[0]]
        pads = self._ints(inputs[1])
        if value.tensor.dim() == 4:
            n0, n1, h0, h1, w0, w1, c0, c1 = pads
            return _Value(F.pad(value.torch(), (w0, w1, h0, h1, c0, c1, n0, n1)), True)
        flat = [p for pair in reversed(list(zip(pads[::2], pads[1::2], strict=True))) for p in pair]
        return _Value(F.pad(value.tensor, flat), False)

    def _reshape(self, values, inputs, options) -> _Value:
        shape = self._ints(inputs[1]) if len(inputs) > 1 and inputs[1] >= 0 else list(options["new_shape"])
        return _Value(values[inputs[0]].tflite().reshape(shape), False)

    def _concatenation(self, values, inputs, options) -> _Value:
        parts = [self._value(values, i) for i in inputs]
        rank = parts[0].tensor.dim()
        axis = options["axis"] % rank
        if rank == 4 and any(p.nchw for p in parts):
            out = _Value(torch.cat([p.torch() for p in parts], _NCHW_AXIS[axis]), True)
        else:
            out = _Value(torch.cat([p.tflite() for p in parts], axis), False)
        out.tensor = _ACTIVATIONS[options["activation"]](out.tensor)
        return out

    def _resize_bilinear(self, values, inputs, options) -> _Value:
        height, width = self._ints(inputs[1])
        x = values[inputs[0]].torch()
        return _Value(resize_bilinear(x, height, width, options["align_corners"], options["half_pixel_centers"]), True)

    def _depth_to_space(self, values, inputs, options) -> _Value:
        return _Value(depth_to_space(values[inputs[0]].torch(), options["block_size"]), True)
