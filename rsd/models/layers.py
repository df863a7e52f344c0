"""Layers shared by the models: conv + BatchNorm (+ ReLU) and the residual block."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ConvBN(nn.Sequential):
    """conv k x k -> BatchNorm -> ReLU (optional); ``padding`` defaults to "same"."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
        padding: int | None = None,
    ) -> None:
        pad = dilation * (k // 2) if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip; ``stride`` 2 halves H and W (1x1 projection on the skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBN(c_in, c_out, stride=stride, dilation=1 if stride > 1 else dilation)
        self.conv2 = ConvBN(c_out, c_out, dilation=dilation, relu=False)
        self.skip = (
            ConvBN(c_in, c_out, k=1, stride=stride, relu=False)
            if stride > 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.skip(x))
