"""A linear probe: how well a frozen model's BEV features predict a per-cell target map.

Used to measure what a teacher's signal adds beyond what the student already reads from its
inputs (issue 12): the same small probe is fitted from the frozen features to two targets
(e.g. the intent teacher's space-time risk and the current-state teacher's); a target the
features predict clearly worse carries information the features do not have.

The probe is a standardisation of the features (per channel, from the training features) and
one convolution, ``kernel`` x ``kernel`` (1: logistic regression per cell; 3: with the 8
neighbours), with a sigmoid: ``(N, C, H, W) -> (N, T, H, W)`` in [0, 1], one output channel
per target channel. It is fitted by Adam on the binary cross-entropy with the soft target (a
proper score, so the output is a calibrated risk), on ``batch`` random frames per step,
from the prior (zero weights, the bias at the logit of each channel's mean target).

Scores (:func:`probe_scores`) of a prediction ``p`` against its target ``t`` over the scored
cells (all, or a mask):

* ``auroc``: of ``p`` for the label ``t > threshold`` (:func:`rsd.metrics.risk.auroc`,
  mid-ranks for ties); ``nan`` unless both labels occur;
* ``balanced_l1``: ``(mean |p - t| over t > threshold + mean |p - t| over the rest) / 2``, so
  the rare risky cells weigh as much as the many empty ones;
* ``r2``: ``1 - sum (p - t)^2 / sum (t - mean t)^2``;
* ``positive``: the share of scored cells with ``t > threshold``; ``cells``: how many.

Pure functions of tensors: no files, no models of the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.metrics.risk import auroc


@dataclass(frozen=True)
class ProbeConfig:
    """How the probe is fitted."""

    kernel: int = 1
    """Convolution size (odd): 1 reads each cell's own features, 3 its neighbours too."""
    steps: int = 300
    """Adam steps."""
    lr: float = 0.02
    batch: int = 64
    """Frames per step."""
    weight_decay: float = 0.0
    seed: int = 0
    threshold: float = 0.3
    """A cell is risky when its target is above this (AUROC label, balanced L1's halves)."""

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"probe kernel must be odd and >= 1, got {self.kernel}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError("probe steps and batch must be >= 1")


class Probe(nn.Module):
    """Standardised features -> one convolution -> sigmoid: ``(N, C, H, W) -> (N, T, H, W)``."""

    def __init__(self, mean: Tensor, std: Tensor, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1))
        self.register_buffer("std", std.reshape(1, -1, 1, 1))
        self.conv = nn.Conv2d(len(mean), out_channels, kernel, padding=kernel // 2)

    def logits(self, features: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, T, H, W) logits."""
        return self.conv((features.float() - self.mean) / self.std)

    def forward(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(features))


def _check(features: Tensor, target: Tensor) -> None:
    if features.ndim != 4 or target.ndim != 4:
        raise ValueError(
            f"probe: features (N, C, H, W) and target (N, T, H, W) expected, got"
            f" {tuple(features.shape)} and {tuple(target.shape)}"
        )
    if features.shape[0] != target.shape[0] or features.shape[-2:] != target.shape[-2:]:
        raise ValueError(
            f"probe: features {tuple(features.shape)} and target {tuple(target.shape)} differ"
            " in frames or grid (pool the target to the feature grid first)"
        )


def fit_probe(features: Tensor, target: Tensor, cfg: ProbeConfig = ProbeConfig()) -> Probe:
    """The probe fitted from ``features`` (N, C, H, W) to ``target`` (N, T, H, W) in [0, 1]
    (same N, H, W); deterministic given ``cfg.seed``."""
    _check(features, target)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = features.float()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # a dead channel stays 0, not nan
    probe = Probe(mean, std, target.shape[1], cfg.kernel)
    # start at the prior (zero weights, the bias at each channel's mean target): with rare
    # risky cells a probe starting at 0.5 would spend its steps learning the base rate
    prior = target.float().mean(dim=(0, 2, 3)).clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        probe.conv.weight.zero_()
        probe.conv.bias.copy_(torch.logit(prior))
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(features)
    for _ in range(cfg.steps):
        idx = torch.randint(n, (min(cfg.batch, n),), generator=gen)
        loss = F.binary_cross_entropy_with_logits(
            probe.logits(features[idx]), target[idx].float().clamp(0, 1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe.eval()


@torch.no_grad()
def predict(probe: Probe, features: Tensor, batch: int = 256) -> Tensor:
    """The probe's (N, T, H, W) prediction in [0, 1], ``batch`` frames at a time."""
    return torch.cat([probe(features[i : i + batch]) for i in range(0, len(features), batch)])


def probe_scores(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, threshold: float = 0.3
) -> dict[str, float]:
    """``auroc``, ``balanced_l1``, ``r2``, ``positive`` and ``cells`` (see the module doc) of
    ``pred`` against ``target`` (same shapes) over the cells where ``mask`` (broadcastable,
    bool) is True; ``nan`` where a score has nothing to average."""
    p = pred.detach().double().reshape(-1)
    t = target.detach().double().reshape(-1)
    if mask is not None:
        keep = torch.broadcast_to(mask.bool(), pred.shape).reshape(-1)
        p, t = p[keep], t[keep]
    nan = float("nan")
    if len(t) == 0:
        return {"auroc": nan, "balanced_l1": nan, "r2": nan, "positive": nan, "cells": 0}
    risky = t > threshold
    err = (p - t).abs()
    halves = [err[m].mean().item() for m in (risky, ~risky) if m.any()]
    sst = ((t - t.mean()) ** 2).sum().item()
    return {
        "auroc": auroc(p.numpy(), risky.numpy()),
        "balanced_l1": float(np.mean(halves)) if len(halves) == 2 else nan,
        "r2": 1.0 - ((p - t) ** 2).sum().item() / sst if sst > 0 else nan,
        "positive": risky.double().mean().item(),
        "cells": len(t),
    }


def disagreement(a: Tensor, b: Tensor, threshold: float = 0.3) -> tuple[Tensor, float]:
    """Where two target maps (same shapes) disagree on "risky" (``> threshold``): the bool mask
    of those cells and their share of the cells either calls risky (``nan`` if none is)."""
    ra, rb = a > threshold, b > threshold
    differ = ra ^ rb
    either = int((ra | rb).sum())
    return differ, int(differ.sum()) / either if either else float("nan")


def fit_and_predict(
    train_features: Tensor,
    train_targets: dict[str, Tensor],
    val_features: Tensor,
    cfg: ProbeConfig = ProbeConfig(),
) -> dict[str, Tensor]:
    """One probe per named target fitted on the training frames: its (N_val, T, H, W)
    prediction on the validation frames, by name."""
    return {
        name: predict(fit_probe(train_features, target, cfg), val_features)
        for name, target in train_targets.items()
    }


def score_targets(
    preds: dict[str, Tensor],
    val_targets: dict[str, Tensor],
    threshold: float = 0.3,
    val_masks: dict[str, dict[str, Tensor]] | None = None,
) -> dict[str, dict[str, float]]:
    """``{name: scores}`` (:func:`probe_scores`) of each prediction over all cells, and
    ``{name}@{label}`` over the cells of ``val_masks[label][name]`` (bool, like the target)
    for every label that has ``name``.

    For exactly two targets also ``{name}@differ``: the cells both targets call risky left
    out, so that the risky cells scored are those this target *alone* calls risky (what it
    adds over the other) against all the cells it calls safe; and ``disagreement``: ``share``
    (:func:`disagreement`) and ``cells`` (how many cells are risky under exactly one)."""
    out: dict[str, dict[str, float]] = {}
    for name, pred in preds.items():
        truth = val_targets[name]
        out[name] = probe_scores(pred, truth, threshold=threshold)
        for label, masks in (val_masks or {}).items():
            if name in masks:
                out[f"{name}@{label}"] = probe_scores(pred, truth, masks[name], threshold)
        if len(val_targets) == 2:
            other = next(t for n, t in val_targets.items() if n != name)
            not_shared = ~((truth > threshold) & (other > threshold))
            out[f"{name}@differ"] = probe_scores(pred, truth, not_shared, threshold)
    if len(val_targets) == 2:
        differ, share = disagreement(*val_targets.values(), threshold)
        out["disagreement"] = {"share": share, "cells": int(differ.sum())}
    return out


def compare_targets(
    train_features: Tensor,
    train_targets: dict[str, Tensor],
    val_features: Tensor,
    val_targets: dict[str, Tensor],
    cfg: ProbeConfig = ProbeConfig(),
    val_masks: dict[str, dict[str, Tensor]] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`fit_and_predict` then :func:`score_targets` (see there)."""
    preds = fit_and_predict(train_features, train_targets, val_features, cfg)
    return score_targets(preds, val_targets, cfg.threshold, val_masks)


def paired_auroc_interval(
    a: tuple[np.ndarray, np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """AUROC(a) - AUROC(b) with a percentile interval from a cluster bootstrap.

    ``a`` and ``b`` are ``(scores, labels, groups)`` of the scored cells (1-D, same length
    within each), ``groups`` the cluster of each cell (e.g. its episode): cells of one episode
    are not independent, so whole groups are drawn with replacement, the same draw for ``a``
    and ``b`` (paired). Returns ``diff``, ``lo``, ``hi`` and ``groups`` (how many); a
    replicate where a class is missing is dropped (``nan`` bounds if all are)."""
    names = np.union1d(a[2], b[2])
    rng = np.random.default_rng(seed)
    cells = [{g: np.flatnonzero(x[2] == g) for g in names} for x in (a, b)]
    diffs = []
    for _ in range(n_boot):
        draw = rng.choice(names, len(names))
        d = []
        for (s, y, _), by_group in zip((a, b), cells, strict=True):
            idx = np.concatenate([by_group[g] for g in draw])
            d.append(auroc(s[idx], y[idx]))
        diffs.append(d[0] - d[1])
    diffs = np.array(diffs)
    diffs = diffs[np.isfinite(diffs)]
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(diffs, [tail, 100 - tail]) if len(diffs) else (np.nan, np.nan)
    return {
        "diff": auroc(a[0], a[1]) - auroc(b[0], b[1]),
        "lo": float(lo),
        "hi": float(hi),
        "groups": len(names),
    }
