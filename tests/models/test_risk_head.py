"""RiskHead internals: deformable sampling, the agent read-out, and learning a painted target."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsd.models import RiskHead, RiskHeadConfig
from rsd.models.risk_head import DeformableSampling


def test_deformable_sampling_with_zero_offsets_reads_its_own_cell() -> None:
    torch.manual_seed(0)
    block = DeformableSampling(8, heads=2, points=3)
    torch.nn.init.zeros_(block.offsets.bias)
    x = torch.randn(2, 8, 5, 4)
    with torch.no_grad():
        expected = x + block.out(block.value(x))  # softmax weights sum to 1
        torch.testing.assert_close(block(x), expected)


def test_deformable_sampling_offset_of_one_row_reads_the_next_row() -> None:
    torch.manual_seed(0)
    block = DeformableSampling(4, heads=1, points=1)
    with torch.no_grad():
        block.offsets.bias.copy_(torch.tensor([1.0, 0.0]))  # (d_row, d_col)
        x = torch.randn(1, 4, 6, 3)
        value = block.value(x)
        shifted = F.pad(value[:, :, 1:], (0, 0, 0, 1))  # row r reads row r + 1; zeros past the end
        torch.testing.assert_close(block(x), x + block.out(shifted))


def _synthetic_scenes(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature tensors (n, c, 40, 16) and full-grid targets (n, 1, 160, 64).

    Every object is a box of feature cells marked in channel 0; a *risky* one also carries a
    marker in channel 1 at its centre cell only. The target paints the whole box of each risky
    object: the head must spread the marker over the box and ignore the other objects."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, c, 40, 16, generator=g) * 0.1
    target = torch.zeros(n, 1, 40, 16)
    for i in range(n):
        for _ in range(4):
            lh = int(torch.randint(3, 6, (1,), generator=g))
            lw = int(torch.randint(2, 4, (1,), generator=g))
            r = int(torch.randint(1, 40 - lh - 1, (1,), generator=g))
            col = int(torch.randint(1, 16 - lw - 1, (1,), generator=g))
            feats[i, 0, r : r + lh, col : col + lw] = 1.0
            if torch.rand(1, generator=g) < 0.5:
                feats[i, 1, r + lh // 2, col + lw // 2] = 1.0
                target[i, 0, r : r + lh, col : col + lw] = 1.0
    return feats, F.interpolate(target, scale_factor=4, mode="nearest")


def _iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    p, t = pred > 0.5, target > 0.5
    return float((p & t).sum() / (p | t).sum())


def test_risk_head_learns_a_painted_risk_target() -> None:
    torch.manual_seed(0)
    feats, target = _synthetic_scenes(8, 16, seed=1)
    head = RiskHead(16, RiskHeadConfig(hidden=32))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(120):
        logits = F.interpolate(head(feats), size=target.shape[-2:], mode="bilinear")
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        pred = F.interpolate(head(feats), size=target.shape[-2:], mode="bilinear").sigmoid()
    assert _iou(pred, target) >= 0.8
