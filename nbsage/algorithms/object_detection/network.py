"""The SSD network: a base network (VGG-16 or ResNet-50), SSD's extra layers, and the heads.

VGG-16 is SSD's: conv1_1 .. conv5_3 with pool5 3x3/1 and fc6 (3x3, dilation 6) and fc7 (1x1) as
convolutions, conv4_3's map L2-normalised with a learned per-channel scale (init 20), then fc7.
ResNet-50 gives its stride-8, 16 and 32 stages (layer2, layer3, layer4). Extra layers follow
SSD's 1x1-then-3x3 pairs (conv8_1/conv8_2, ...) until the map is 1x1: stride 2 while the map is
larger than 5, then unpadded 3x3 (SSD300's 5 -> 3 -> 1), so 300 gives SSD300's 38, 19, 10, 5, 3,
1 maps and 512 gives SSD512's seven. Every head is a 3x3 convolution per map.

Training from scratch (no ImageNet weights can be downloaded here), every convolution of the base
and the extras is followed by batch normalisation, as ScratchDet and DSOD found SSD needs without
pretraining. `width` scales every layer's channels (nbsage's `_network_width`). Layer names
(conv1_1, fc7, layer3, conv8_2, ...) are what `freeze_layer_pattern` matches.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nbsage.algorithms.object_detection import boxes as box_ops

VGG_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
RESNET_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (mid channels, blocks, stride)
EXTRAS = ((256, 512), (128, 256), (128, 256), (128, 256), (128, 256), (128, 256))


def _ch(c: int, width: float) -> int:
    return max(8, int(round(c * width)))


def _conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1, ceil: bool = False) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class L2Norm(nn.Module):
    """x / ||x|| over channels, times a learned scale per channel (SSD's conv4_3 normalisation)."""

    def __init__(self, channels: int, scale: float = 20.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x):
        return F.normalize(x, dim=1, eps=1e-10) * self.weight[None, :, None, None]


class VGGBase(nn.Module):
    """SSD's VGG-16: returns the conv4_3 (L2-normalised) and fc7 maps."""

    def __init__(self, width: float):
        super().__init__()
        self.layers = nn.ModuleDict()
        cin = 3
        for s, (c, n) in enumerate(VGG_STAGES, start=1):
            for i in range(1, n + 1):
                self.layers[f"conv{s}_{i}"] = conv_bn(cin, _ch(c, width), 3, pad=1)
                cin = _ch(c, width)
        self.layers["fc6"] = conv_bn(cin, _ch(1024, width), 3, pad=6, dilation=6)
        self.layers["fc7"] = conv_bn(_ch(1024, width), _ch(1024, width), 1)
        self.conv4_3_norm = L2Norm(_ch(512, width))
        self.out_channels = [_ch(512, width), _ch(1024, width)]

    @staticmethod
    def sizes(image: int) -> list[int]:
        s = image
        for _ in range(3):
            s = _conv_out(s, 2, 2, ceil=True)
        return [s, _conv_out(s, 2, 2)]

    def forward(self, x):
        outs = []
        for name, layer in self.layers.items():
            x = layer(x)
            if name in ("conv1_2", "conv2_2", "conv3_3"):
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            elif name == "conv4_3":
                outs.append(self.conv4_3_norm(x))
                x = F.max_pool2d(x, 2, 2)
            elif name == "conv5_3":
                x = F.max_pool2d(x, 3, 1, 1)
        outs.append(x)
        return outs


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = mid * 4
        self.conv1 = conv_bn(cin, mid, 1)
        self.conv2 = conv_bn(mid, mid, 3, stride, 1)
        self.conv3 = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


class ResNetBase(nn.Module):
    """ResNet-50: returns the layer2, layer3 and layer4 maps (strides 8, 16, 32)."""

    def __init__(self, width: float):
        super().__init__()
        self.conv1 = conv_bn(3, _ch(64, width), 7, 2, 3)
        cin = _ch(64, width)
        self.stages = nn.ModuleDict()
        self.out_channels = []
        for s, (mid, n, stride) in enumerate(RESNET_STAGES, start=1):
            blocks = []
            for i in range(n):
                blocks.append(Bottleneck(cin, _ch(mid, width), stride if i == 0 else 1))
                cin = _ch(mid, width) * 4
            self.stages[f"layer{s}"] = nn.Sequential(*blocks)
            if s > 1:
                self.out_channels.append(cin)

    @staticmethod
    def sizes(image: int) -> list[int]:
        s = _conv_out(_conv_out(image, 7, 2, 3), 3, 2, 1)
        out = []
        for _ in range(3):
            s = _conv_out(s, 3, 2, 1)
            out.append(s)
        return out

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 3, 2, 1)
        outs = []
        for name, stage in self.stages.items():
            x = stage(x)
            if name != "layer1":
                outs.append(x)
        return outs


class SSD(nn.Module):
    """Base network + extra layers + class and box heads; forward gives (class logits, box deltas)."""

    def __init__(self, base_network: str, num_classes: int, image_shape: int, width: float = 1.0):
        super().__init__()
        self.base = VGGBase(width) if base_network == "vgg-16" else ResNetBase(width)
        sizes = list(self.base.sizes(image_shape))
        channels = list(self.base.out_channels)
        self.extras = nn.ModuleDict()
        k = 8
        while sizes[-1] > 1:
            mid, out = EXTRAS[min(k - 8, len(EXTRAS) - 1)]
            s = sizes[-1]
            if s > 5:
                second, nxt = conv_bn(_ch(mid, width), _ch(out, width), 3, 2, 1), _conv_out(s, 3, 2, 1)
            elif s >= 3:
                second, nxt = conv_bn(_ch(mid, width), _ch(out, width), 3), _conv_out(s, 3)
            else:
                second, nxt = conv_bn(_ch(mid, width), _ch(out, width), s), 1
            self.extras[f"conv{k}"] = nn.Sequential(conv_bn(channels[-1], _ch(mid, width), 1), second)
            sizes.append(nxt)
            channels.append(_ch(out, width))
            k += 1
        self.feature_sizes = sizes
        self.num_classes = num_classes
        per_cell = box_ops.boxes_per_cell(len(sizes))
        self.cls_heads = nn.ModuleList(nn.Conv2d(c, n * (num_classes + 1), 3, padding=1)
                                       for c, n in zip(channels, per_cell))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, n * 4, 3, padding=1) for c, n in zip(channels, per_cell))
        self.register_buffer("anchors", box_ops.default_boxes(sizes), persistent=False)
        self._init()

    def _init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in list(self.cls_heads) + list(self.box_heads):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        # start with a low foreground probability (as RetinaNet), so early hard negatives do not swamp
        for head in self.cls_heads:
            head.bias.data.view(-1, self.num_classes + 1)[:, 0] = math.log(self.num_classes * 9.0)

    def features(self, x):
        maps = self.base(x)
        y = maps[-1]
        for extra in self.extras.values():
            y = extra(y)
            maps.append(y)
        return maps

    def forward(self, x):
        maps = self.features(x)
        n = x.shape[0]
        cls = [h(m).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes + 1) for h, m in zip(self.cls_heads, maps)]
        loc = [h(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for h, m in zip(self.box_heads, maps)]
        return torch.cat(cls, 1), torch.cat(loc, 1)

    def layer_names(self) -> dict[str, list[nn.Parameter]]:
        """{layer name: its parameters}: conv1_1 .. fc7 / conv1, layer1 .. layer4, conv8 .., heads."""
        out: dict[str, list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "base":
                layer = parts[2] if parts[1] in ("layers", "stages") else parts[1]
            elif parts[0] == "extras":
                layer = parts[1]
            else:
                layer = f"{parts[0]}_{parts[1]}"
            out.setdefault(layer, []).append(p)
        return out


def multibox_loss(cls_logits, deltas, labels, matched, anchors, negative_ratio: int = 3):
    """(cross-entropy, smooth L1), each summed and divided by the number of matched default boxes.

    Negatives are mined per image: the 3 x (positives) background boxes with the highest loss.
    """
    positive = labels > 0
    num_pos = positive.sum(1)                                               # (B,)
    targets = box_ops.encode(matched, anchors)
    loc = F.smooth_l1_loss(deltas[positive], targets[positive], reduction="sum")
    ce = F.cross_entropy(cls_logits.reshape(-1, cls_logits.shape[-1]), labels.reshape(-1),
                         reduction="none").view_as(labels)
    background = ce.detach().clone()
    background[positive] = -math.inf
    order = background.sort(1, descending=True).indices
    rank = order.sort(1).indices
    negatives = rank < (negative_ratio * num_pos.clamp(min=1))[:, None]
    n = num_pos.sum().clamp(min=1).float()
    return (ce[positive].sum() + ce[negatives].sum()) / n, loc / n
