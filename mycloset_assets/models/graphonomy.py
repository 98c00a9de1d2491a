"""Graphonomy (Gong et al. 2019) as published by Gaoyiminggithub/Graphonomy@09e5dd4.

The class is the reference's ``deeplab_xception_transfer_projection_savemem(n_classes=20, hidden_layers=128,
source_classes=7)``, the network of its CIHP ``inference.pth``:

- Encoder-decoder: a modified aligned Xception (output stride 16) and a DeepLabV3+ head whose ASPP branches
  and decoder are separable convolutions; the decoder works at stride 4 on 256 channels.
- Graph reasoning: the decoder features are pooled into a 7-node source graph (PASCAL-Person-Part) and a
  20-node target graph (CIHP). The source graph goes through graph convolutions; before each of the three
  target graph convolutions, the target nodes are fused (``fc_graph``) with the source nodes transferred by
  feature similarity and by the learned-on-word-embeddings transfer matrix.
- The target graph is projected back onto the pixels, added to a 1x1 skip branch, classified, and the
  logits are upsampled bilinearly (``align_corners=True``) to the input size.

The adjacency matrices the reference's inference passes to ``forward`` are non-persistent constants here, so
``forward(x)`` computes ``net.forward(x, adj1_target, adj2_source, adj3_transfer)``. Reference quirks kept:
Xception blocks that start with a ReLU apply it in place, so their shortcut sees the activated input; the
third source-graph step reuses ``source_graph_conv2`` (``source_graph_conv3`` is stored but unused); the
stored ``transpose_graph.adj`` is unused, the constant transfer matrix is applied instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Graphs of the reference (networks/graph.py): neighbours of each part; self-loops count once.
CIHP_GRAPH: dict[int, tuple[int, ...]] = {
    0: (),
    1: (2, 13),
    2: (1, 13),
    3: (14, 15),
    4: (13,),
    5: (6, 7, 9, 10, 11, 12, 14, 15),
    6: (5, 7, 10, 11, 14, 15, 16, 17),
    7: (5, 6, 9, 10, 11, 12, 14, 15),
    8: (16, 17, 18, 19),
    9: (5, 7, 10, 16, 17, 18, 19),
    10: (5, 6, 7, 9, 11, 12, 13, 14, 15, 16, 17),
    11: (5, 6, 7, 10, 13),
    12: (5, 7, 10, 16, 17),
    13: (1, 2, 4, 10, 11),
    14: (3, 5, 6, 7, 10),
    15: (3, 5, 6, 7, 10),
    16: (6, 8, 9, 10, 12, 18),
    17: (6, 8, 9, 10, 12, 19),
    18: (8, 9, 16),
    19: (8, 9, 17),
}
PASCAL_GRAPH: dict[int, tuple[int, ...]] = {
    0: (0,),
    1: (1, 2),
    2: (1, 2, 3, 5),
    3: (2, 3, 4),
    4: (3, 4),
    5: (2, 5, 6),
    6: (5, 6),
}
# Word-embedding similarity of the 7 PASCAL parts (rows) to the 20 CIHP classes (``cihp2pascal_nlp_adj``).
# fmt: off
PASCAL_TO_CIHP_SIMILARITY: tuple[tuple[float, ...], ...] = (
    (1.0, 0.35333052, 0.32727194, 0.17418084, 0.18757584, 0.40608522, 0.37503981,
     0.35448462, 0.22598555, 0.23893579, 0.33064262, 0.28923404, 0.27986573, 0.4211553,
     0.36915778, 0.41377746, 0.32485771, 0.37248222, 0.36865639, 0.41500332),
    (0.39615879, 0.46201529, 0.52321467, 0.30826114, 0.25669527, 0.54747773, 0.3670523,
     0.3901983, 0.27519473, 0.3433325, 0.52728509, 0.32771333, 0.34819325, 0.63882953,
     0.68042925, 0.69368576, 0.63395791, 0.65344337, 0.59538781, 0.6071375),
    (0.16373166, 0.21663339, 0.3053872, 0.28377612, 0.1372435, 0.4448808, 0.29479995,
     0.31092595, 0.22703953, 0.33983576, 0.75778818, 0.2619818, 0.37069392, 0.35184867,
     0.49877512, 0.49979437, 0.51853277, 0.52517541, 0.32517741, 0.32377309),
    (0.32687232, 0.38482461, 0.37693463, 0.41610834, 0.20415749, 0.76749079, 0.35139853,
     0.3787411, 0.28411737, 0.35155421, 0.58792618, 0.31141718, 0.40585111, 0.51189218,
     0.82042737, 0.8342413, 0.70732188, 0.72752501, 0.60327325, 0.61431337),
    (0.34069369, 0.34817292, 0.37525998, 0.36497069, 0.17841617, 0.69746208, 0.31731463,
     0.34628951, 0.25167277, 0.32072379, 0.56711286, 0.24894776, 0.37000453, 0.52600859,
     0.82483993, 0.84966274, 0.7033991, 0.73449378, 0.56649608, 0.58888791),
    (0.28477487, 0.35139564, 0.42742352, 0.41664321, 0.20004676, 0.78566833, 0.42237487,
     0.41048549, 0.37933812, 0.46542516, 0.62444759, 0.3274493, 0.49466009, 0.49314658,
     0.71244233, 0.71497003, 0.8234787, 0.83566589, 0.62597135, 0.62626812),
    (0.3011378, 0.31775977, 0.42922647, 0.36896257, 0.17597556, 0.72214655, 0.39162804,
     0.38137872, 0.34980296, 0.43818419, 0.60879174, 0.26762545, 0.46271161, 0.51150476,
     0.72318109, 0.73678399, 0.82620388, 0.84942166, 0.5943811, 0.60607602),
)
# fmt: on


def normalized_adjacency(graph: dict[int, tuple[int, ...]]) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` of an undirected graph, the reference's ``preprocess_adj`` (float32, CPU)."""
    n = len(graph)
    edges = [[float(j in graph[i] or i in graph[j]) for j in range(n)] for i in range(n)]
    eye = torch.eye(n, dtype=torch.float64, device="cpu")
    adj = torch.tensor(edges, dtype=torch.float64, device="cpu") + eye
    inv_sqrt_degree = adj.sum(1).rsqrt()
    return (inv_sqrt_degree[:, None] * adj * inv_sqrt_degree[None, :]).float()


# --- Xception backbone --------------------------------------------------------------------------------------


class SeparableConv(nn.Module):
    """Depthwise 3x3 (dilated) + BN, then pointwise 1x1 + BN; ``activation`` adds a ReLU after each BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, activation: bool = False) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, 3, stride, padding=dilation, dilation=dilation, groups=in_ch, bias=False
        )
        self.depthwise_bn = nn.BatchNorm2d(in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU() if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.depthwise_bn(self.depthwise(x)))
        return self.act(self.pointwise_bn(self.pointwise(x)))


def separable_stack(widths: tuple[int, ...], stride: int = 1, relu_first: bool = True) -> nn.Sequential:
    """ReLU, separable conv, ReLU, separable conv...: ``widths[i] -> widths[i + 1]``, the last one strided."""
    layers: list[nn.Module] = []
    last = len(widths) - 2
    for i, (in_ch, out_ch) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers += [nn.ReLU(), SeparableConv(in_ch, out_ch, stride if i == last else 1)]
    return nn.Sequential(*(layers if relu_first else layers[1:]))


class XceptionBlock(nn.Module):
    """Residual unit of separable convolutions; a 1x1 convolution + BN projects the shortcut when the width
    or the resolution changes."""

    def __init__(self, widths: tuple[int, ...], stride: int = 1, relu_first: bool = True) -> None:
        super().__init__()
        self.relu_first = relu_first
        self.skip: nn.Conv2d | None = None
        if widths[0] != widths[-1] or stride != 1:
            self.skip = nn.Conv2d(widths[0], widths[-1], 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(widths[-1])
        self.rep = separable_stack(widths, stride, relu_first)

    def forward(self, x: Tensor) -> Tensor:
        if self.relu_first:
            x = F.relu(x)  # the reference's leading ReLU works in place: the shortcut sees it too
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut


class LowLevelBlock(nn.Module):
    """Entry block 2: its stride-1 separable convolutions give the low-level (stride 4) decoder features,
    then a strided separable convolution and the projected shortcut give the block output."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(in_ch, out_ch, 1, 2, bias=False)
        self.skipbn = nn.BatchNorm2d(out_ch)
        self.block2_lastconv = separable_stack((out_ch, out_ch), stride=2)
        self.rep = separable_stack((in_ch, out_ch, out_ch))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(x)  # in place in the reference, as in XceptionBlock
        low_level = self.rep(x)
        return self.block2_lastconv(low_level) + self.skipbn(self.skip(x)), low_level


class AlignedXception(nn.Module):
    """Modified aligned Xception at output stride 16: entry flow, 16 middle blocks, exit flow with dilation 2.

    ``forward`` returns ``(features, low_level)``: 2048 channels at stride 16 and 256 channels at stride 4.
    """

    def __init__(self, in_ch: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 32, 3, 2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = XceptionBlock((64, 128, 128, 128), stride=2, relu_first=False)
        self.block2 = LowLevelBlock(128, 256)
        self.block3 = XceptionBlock((256, 728, 728, 728), stride=2)
        for i in range(4, 20):
            self.add_module(f"block{i}", XceptionBlock((728, 728, 728, 728)))
        self.block20 = XceptionBlock((728, 728, 1024, 1024))
        self.conv3 = SeparableConv(1024, 1536, dilation=2, activation=True)
        self.conv4 = SeparableConv(1536, 1536, dilation=2, activation=True)
        self.conv5 = SeparableConv(1536, 2048, dilation=2, activation=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x, low_level = self.block2(self.block1(x))
        for i in range(3, 21):
            x = self.get_submodule(f"block{i}")(x)
        return self.conv5(self.conv4(self.conv3(x))), low_level


# --- DeepLabV3+ head ----------------------------------------------------------------------------------------


class PointwiseBranch(nn.Module):
    """ASPP's 1x1 branch: convolution, BN, ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.atrous_convolution = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.atrous_convolution(x)))


class SeparableBranch(nn.Module):
    """A dilated separable convolution with ReLUs: an ASPP branch or a decoder layer."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.atrous_convolution = SeparableConv(in_ch, out_ch, dilation=dilation, activation=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.atrous_convolution(x)


# --- Graph reasoning ----------------------------------------------------------------------------------------


class FeaturesToGraph(nn.Module):
    """Pools pixels (N x C x H x W) into graph nodes (N x nodes x hidden): a softmax over the nodes assigns
    each pixel, and the node features are the assigned sums of projected pixels, then ReLU."""

    def __init__(self, in_ch: int, hidden: int, nodes: int) -> None:
        super().__init__()
        self.pre_fea = nn.Parameter(nn.init.xavier_uniform_(torch.empty(in_ch, nodes)))
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(in_ch, hidden)))

    def forward(self, x: Tensor) -> Tensor:
        pixels = x.flatten(2).transpose(1, 2)
        assignment = (pixels @ self.pre_fea).softmax(-1)
        return F.relu(assignment.transpose(1, 2) @ (pixels @ self.weight))


class GraphConvolution(nn.Module):
    """``ReLU(adj @ x @ W)`` on N x nodes x features (``x @ W`` without an adjacency)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(in_features, out_features)))

    def forward(self, x: Tensor, adj: Tensor | None = None) -> Tensor:
        support = x @ self.weight
        return F.relu(support if adj is None else adj @ support)


class GraphTransfer(nn.Module):
    """Inter-graph transfer ``ReLU(softmax(ReLU(adj)) @ x @ W)``: source nodes onto target nodes.

    ``adj`` (target x source) is a stored parameter; the reference's inference passes the constant
    word-embedding transfer matrix instead, so ``forward`` takes it as an argument."""

    def __init__(self, features: int, source_nodes: int, target_nodes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(features, features)))
        self.adj = nn.Parameter(torch.zeros(target_nodes, source_nodes))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        return F.relu(F.relu(adj).softmax(-1) @ (x @ self.weight))


class GraphToFeatures(nn.Module):
    """Projects graph nodes back onto the pixels: each pixel takes a softmax mixture over the nodes, weighted
    from its own features (``node_fea_for_res``) and the nodes' (``node_fea_for_hidden``), then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int) -> None:
        super().__init__()
        self.node_fea_for_res = nn.Parameter(nn.init.xavier_uniform_(torch.empty(in_ch, 1)))
        self.node_fea_for_hidden = nn.Parameter(nn.init.xavier_uniform_(torch.empty(hidden, 1)))
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(hidden, out_ch)))

    def forward(self, graph: Tensor, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        pixels = x.flatten(2).transpose(1, 2)
        logits = pixels @ self.node_fea_for_res + (graph @ self.node_fea_for_hidden).transpose(1, 2)
        out = logits.softmax(-1) @ (graph @ self.weight)
        return F.relu(out.transpose(1, 2).reshape(n, -1, h, w))


def similarity_transfer(source: Tensor, target: Tensor) -> Tensor:
    """Source nodes mixed onto each target node by the softmax of their cosine similarities."""
    similarity = F.normalize(target, dim=-1) @ F.normalize(source, dim=-1).transpose(-1, -2)
    return similarity.softmax(-1) @ source


# --- The network --------------------------------------------------------------------------------------------


class Graphonomy(nn.Module):
    """Graphonomy CIHP parser: ``forward(x)`` -> 20-class logits at the input resolution.

    ``x`` is N x 3 x H x W, BGR, ``pixel * 2 / 255 - 1``; any size (output stride 16).
    """

    def __init__(self, hidden_layers: int = 128) -> None:
        super().__init__()
        n_classes, source_classes, channels = len(CIHP_GRAPH), len(PASCAL_GRAPH), 256
        self.xception_features = AlignedXception()
        self.aspp1 = PointwiseBranch(2048, channels)
        self.aspp2 = SeparableBranch(2048, channels, dilation=6)
        self.aspp3 = SeparableBranch(2048, channels, dilation=12)
        self.aspp4 = SeparableBranch(2048, channels, dilation=18)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2048, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.concat_projection_conv1 = nn.Conv2d(5 * channels, channels, 1, bias=False)
        self.concat_projection_bn1 = nn.BatchNorm2d(channels)
        self.feature_projection_conv1 = nn.Conv2d(256, 48, 1, bias=False)
        self.feature_projection_bn1 = nn.BatchNorm2d(48)
        self.decoder = nn.Sequential(SeparableBranch(channels + 48, channels), SeparableBranch(channels, channels))
        self.semantic = nn.Conv2d(channels, n_classes, 1)

        self.target_featuremap_2_graph = FeaturesToGraph(channels, hidden_layers, n_classes)
        self.target_graph_conv1 = GraphConvolution(hidden_layers, hidden_layers)
        self.target_graph_conv2 = GraphConvolution(hidden_layers, hidden_layers)
        self.target_graph_conv3 = GraphConvolution(hidden_layers, hidden_layers)
        self.target_graph_2_fea = GraphToFeatures(channels, channels, hidden_layers)
        self.target_skip_conv = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())

        self.source_featuremap_2_graph = FeaturesToGraph(channels, hidden_layers, source_classes)
        self.source_graph_conv1 = GraphConvolution(hidden_layers, hidden_layers)
        self.source_graph_conv2 = GraphConvolution(hidden_layers, hidden_layers)
        self.source_graph_conv3 = GraphConvolution(hidden_layers, hidden_layers)
        self.transpose_graph = GraphTransfer(hidden_layers, source_classes, n_classes)
        self.fc_graph = GraphConvolution(3 * hidden_layers, hidden_layers)

        transfer = torch.tensor(PASCAL_TO_CIHP_SIMILARITY, dtype=torch.float32, device="cpu").T.contiguous()
        self.register_buffer("adj_target", normalized_adjacency(CIHP_GRAPH), persistent=False)
        self.register_buffer("adj_source", normalized_adjacency(PASCAL_GRAPH), persistent=False)
        self.register_buffer("adj_transfer", transfer, persistent=False)

    def graph_reasoning(self, x: Tensor) -> Tensor:
        """Decoder features -> target graph (N x 20 x hidden) after three transfer-and-convolve rounds."""
        source = self.source_featuremap_2_graph(x)
        source1 = self.source_graph_conv1(source, self.adj_source)
        source2 = self.source_graph_conv2(source1, self.adj_source)
        source3 = self.source_graph_conv2(source2, self.adj_source)
        target = self.target_featuremap_2_graph(x)
        target_convs = (self.target_graph_conv1, self.target_graph_conv2, self.target_graph_conv3)
        for conv, src in zip(target_convs, (source1, source2, source3), strict=True):
            transferred = self.transpose_graph(src, self.adj_transfer)
            fused = self.fc_graph(torch.cat((target, similarity_transfer(src, target), transferred), -1))
            target = conv(fused, self.adj_target)
        return target

    def forward(self, x: Tensor) -> Tensor:
        features, low_level = self.xception_features(x)
        pooled = F.interpolate(
            self.global_avg_pool(features), size=features.shape[2:], mode="bilinear", align_corners=True
        )
        branches = [aspp(features) for aspp in (self.aspp1, self.aspp2, self.aspp3, self.aspp4)]
        high = torch.cat((*branches, pooled), 1)
        high = F.relu(self.concat_projection_bn1(self.concat_projection_conv1(high)))
        high = F.interpolate(high, size=low_level.shape[2:], mode="bilinear", align_corners=True)
        low = F.relu(self.feature_projection_bn1(self.feature_projection_conv1(low_level)))
        decoded = self.decoder(torch.cat((high, low), 1))

        graph = self.graph_reasoning(decoded)
        logits = self.semantic(self.target_skip_conv(decoded) + self.target_graph_2_fea(graph, decoded))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=True)
