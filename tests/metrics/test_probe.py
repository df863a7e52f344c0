"""The linear probe (:mod:`rsd.metrics.probe`) on synthetic cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsd.metrics.probe import (
    ProbeConfig,
    compare_targets,
    disagreement,
    fit_probe,
    paired_auroc_interval,
    predict,
    probe_scores,
)

N, C, H, W = 48, 8, 6, 5


def _features(seed: int, n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # channels on different scales and offsets: the probe must standardise them
    scale = torch.linspace(0.1, 10.0, C).reshape(1, C, 1, 1)
    return torch.randn(n, C, H, W, generator=g) * scale + 3.0


def _linear_target(x: torch.Tensor) -> torch.Tensor:
    """A 2-channel soft target, each a sigmoid of a linear function of the cell's features."""
    scale = torch.linspace(0.1, 10.0, C).reshape(1, C, 1, 1)
    z = (x - 3.0) / scale
    w = torch.tensor([[2.0, -1.0, 0, 0, 1.5, 0, 0, 0], [0, 0, 3.0, 0, 0, -2.0, 0, 1.0]])
    return torch.sigmoid(2.0 * torch.einsum("tc,nchw->nthw", w, z) - 2.0)


def test_linear_target_is_read_and_independent_one_is_not() -> None:
    x_tr, x_va = _features(0), _features(1)
    g = torch.Generator().manual_seed(2)
    noise_tr, noise_va = (torch.rand(N, 2, H, W, generator=g) for _ in range(2))
    cfg = ProbeConfig(steps=300, batch=16)
    linear = probe_scores(
        predict(fit_probe(x_tr, _linear_target(x_tr), cfg), x_va), _linear_target(x_va)
    )
    noise = probe_scores(predict(fit_probe(x_tr, noise_tr, cfg), x_va), noise_va)
    assert linear["auroc"] > 0.98 and linear["r2"] > 0.9
    assert abs(noise["auroc"] - 0.5) < 0.05 and noise["r2"] < 0.02


def test_kernel_3_reads_the_neighbours() -> None:
    """A target that is the left neighbour's feature: a 3x3 probe reads it, a 1x1 one cannot."""
    x_tr, x_va = _features(3), _features(4)

    def target(x: torch.Tensor) -> torch.Tensor:
        left = torch.zeros_like(x[:, :1])
        left[..., 1:] = x[:, :1, :, :-1]  # the feature of the cell to the left
        return (left > 3.0).float()

    scores = {
        k: probe_scores(
            predict(fit_probe(x_tr, target(x_tr), ProbeConfig(kernel=k, batch=16)), x_va),
            target(x_va),
            mask=torch.arange(W) > 0,  # cells with a left neighbour
        )
        for k in (1, 3)
    }
    assert scores[3]["auroc"] > 0.98 and abs(scores[1]["auroc"] - 0.5) < 0.06


def test_scores_by_hand() -> None:
    t = torch.tensor([0.0, 0.0, 0.5, 1.0])
    p = torch.tensor([0.1, 0.3, 0.2, 0.9])
    s = probe_scores(p, t, threshold=0.3)
    # risky cells 2 and 3: |0.2 - 0.5| and |0.9 - 1| -> 0.2; the rest 0.1 and 0.3 -> 0.2
    assert s["balanced_l1"] == pytest.approx(0.2)
    # mean t 0.375; SST = 2 * 0.140625 + 0.015625 + 0.390625 = 0.6875; SSE = 0.01+0.09+0.09+0.01
    assert s["r2"] == pytest.approx(1 - 0.2 / 0.6875)
    # pairs (risky, rest): (0.2 vs 0.1, 0.3) -> 1 of 2; (0.9 vs both) -> 2 of 2
    assert s["auroc"] == pytest.approx(0.75)
    assert s["positive"] == 0.5 and s["cells"] == 4
    masked = probe_scores(p, t, mask=torch.tensor([True, False, True, False]))
    assert masked["cells"] == 2 and masked["balanced_l1"] == pytest.approx((0.3 + 0.1) / 2)
    empty = probe_scores(p, t, mask=torch.zeros(4, dtype=torch.bool))
    assert empty["cells"] == 0 and math.isnan(empty["auroc"])
    assert math.isnan(probe_scores(p, torch.zeros(4))["auroc"])  # one label only


def test_disagreement_by_hand() -> None:
    a = torch.tensor([0.9, 0.9, 0.0, 0.0, 0.5])
    b = torch.tensor([0.9, 0.0, 0.9, 0.0, 0.1])
    differ, share = disagreement(a, b, 0.3)
    assert differ.tolist() == [False, True, True, False, True]
    assert share == pytest.approx(3 / 4)  # 4 cells risky in either, 3 in one only
    assert math.isnan(disagreement(torch.zeros(3), torch.zeros(3))[1])


def test_compare_targets_tells_the_readable_target_from_the_hidden_one() -> None:
    """Two targets that agree except where a hidden bit (not in the features) adds risk: the
    readable one scores higher, and on the cells where they differ the hidden one is ~chance."""
    x_tr, x_va = _features(5, 96), _features(6, 96)

    def targets(x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        seen = (_linear_target(x)[:, :1] > 0.5).float()
        hidden = torch.rand(seen.shape, generator=torch.Generator().manual_seed(seed)) < 0.3
        return {"hidden": torch.maximum(seen, hidden.float()), "seen": seen}

    val = targets(x_va, 8)
    first_row = torch.zeros(val["seen"].shape, dtype=torch.bool)
    first_row[..., 0, :] = True
    out = compare_targets(
        x_tr, targets(x_tr, 7), x_va, val, ProbeConfig(batch=16), {"row0": {"seen": first_row}}
    )
    assert out["seen@row0"]["cells"] == x_va.shape[0] * W and "hidden@row0" not in out
    assert out["seen"]["auroc"] > 0.98 > out["hidden"]["auroc"]
    assert abs(out["hidden@differ"]["auroc"] - 0.5) < 0.1
    share = out["disagreement"]["share"]
    assert 0 < share < 1 and out["disagreement"]["cells"] > 0
    # "seen" adds nothing over "hidden": none of its risky cells is its own
    assert out["seen@differ"]["positive"] == 0 and math.isnan(out["seen@differ"]["auroc"])
    # the cells both call risky are left out of both
    both = int((targets(x_va, 8)["seen"] > 0.3).sum())
    assert out["hidden@differ"]["cells"] == x_va.shape[0] * H * W - both


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="grid"):
        fit_probe(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 2, 2))
    with pytest.raises(ValueError, match="odd"):
        ProbeConfig(kernel=2)


def test_paired_auroc_interval() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 50)
    labels = rng.random(len(groups)) < 0.3
    informative = labels + rng.normal(0, 0.5, len(groups))
    noise = rng.random(len(groups))
    same = paired_auroc_interval(
        (informative, labels, groups), (informative, labels, groups), n_boot=200
    )
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["groups"] == 40
    better = paired_auroc_interval(
        (informative, labels, groups), (noise, labels, groups), n_boot=200
    )
    assert better["lo"] > 0.2 and better["lo"] <= better["diff"] <= better["hi"] < 0.6
    # the two sides may score different cells (each target's own mask): still paired by group
    half = slice(0, len(groups) // 2)
    both = paired_auroc_interval(
        (noise, labels, groups), (noise[half], labels[half], groups[half]), n_boot=200
    )
    assert both["groups"] == 40 and both["lo"] < 0 < both["hi"]
