"""RiskHead internals: deformable sampling, the agent read-out, and learning a painted target."""

from __future__ import annotations

import numpy as np
import pytest
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


@pytest.mark.parametrize("coarse", [True, False])
def test_risk_head_learns_a_painted_risk_target(coarse: bool) -> None:
    torch.manual_seed(0)
    feats, target = _synthetic_scenes(8, 16, seed=1)
    head = RiskHead(16, RiskHeadConfig(hidden=32, coarse=coarse))
    assert (head.down is None) == (not coarse)
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


def test_mode_risk_cost_reads_channel_t_at_waypoint_t() -> None:
    """Two modes on a 6-channel map where only channel 2 (1.5 s) is risky, at one cell: the
    mode whose waypoint 2 lies there pays 1/6, the other (there at another time) nothing."""
    from rsd.geometry import BEVGrid, pixel_to_world
    from rsd.models.plan_head import mode_risk_cost, reselect_modes

    grid = BEVGrid()
    risk = torch.zeros(1, 6, *grid.shape)
    risk[0, 2, 40, 32] = 1.0
    centre = torch.as_tensor(pixel_to_world(np.array([40.5, 32.5]), grid), dtype=torch.float32)
    traj = torch.zeros(1, 2, 6, 2)
    traj[0, 0, 2] = centre  # mode 0 is there at 1.5 s
    traj[0, 1, 4] = centre  # mode 1 is there at 2.5 s, when the cell is free
    traj[0, :, [0, 1, 3, 5]] = torch.tensor([-100.0, 0.0])  # elsewhere: outside the grid
    traj[0, 0, 4] = torch.tensor([-100.0, 0.0])
    traj[0, 1, 2] = torch.tensor([-100.0, 0.0])
    cost = mode_risk_cost(risk, traj, grid)
    assert cost[0].tolist() == pytest.approx([1 / 6, 0.0], abs=1e-6)
    # one channel: every waypoint reads it, so the single map cannot tell the two apart
    single = mode_risk_cost(risk[:, 2:3], traj, grid)
    assert single[0].tolist() == pytest.approx([1 / 6, 1 / 6], abs=1e-6)
    out = {"plan_traj": traj, "plan_logits": torch.tensor([[0.1, 0.0]]), "plan": traj[:, 0]}
    chosen = reselect_modes(out, cost, torch.tensor(1.0))  # 0.1 - 1/6 < 0: mode 1 now
    assert torch.equal(chosen["plan"], traj[:, 1]) and torch.equal(out["plan"], traj[:, 0])


def test_oracle_model_reads_the_teacher_maps() -> None:
    from rsd.models import BackboneConfig, ModelConfig, build_model
    from tests.models.batches import make_features

    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    model = build_model(
        ModelConfig(backbone=bb), 7, risk_head=True, risk_channels=6, oracle_key="oracle_risk"
    ).eval()
    feats = make_features(2)
    maps = torch.zeros(2, 6, 160, 64)
    maps[1, :, 60:80, 20:40] = 1.0
    with pytest.raises(KeyError, match="oracle_risk"):
        model(feats)
    out = model({**feats, "oracle_risk": maps})
    assert torch.equal(out["risk_map"], maps)
    assert out["plan_risk_cost"][0].abs().sum() == 0  # an empty map costs nothing


@pytest.mark.parametrize("planner_grad", [False, True])
def test_planning_loss_reaches_the_head_only_with_planner_grad(planner_grad: bool) -> None:
    """By default the planner reads a stop-gradient copy of the map: a loss on the plan alone
    leaves the head's own weights without gradient (only the distillation terms train it), while
    the gate, the cost weight and the plan refinement (the planner's use of the map) still
    learn."""
    from rsd.models import BackboneConfig, ModelConfig, build_model
    from tests.models.batches import make_features

    torch.manual_seed(0)
    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    head = RiskHeadConfig(hidden=8, planner_grad=planner_grad, refine=True)
    cfg = ModelConfig(backbone=bb, risk_head=head)
    model = build_model(cfg, 7, risk_head=True, risk_channels=6)
    with torch.no_grad():  # away from the initialisation (zero-initialised output layers)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out = model(make_features(2))
    (out["plan_traj"].square().sum() + out["plan_logits"].square().sum()).backward()
    use = ("gate", "cost_weight")
    head_w = [p for n, p in model.head.named_parameters() if n not in use and "refiner." not in n]
    grads = [p.grad for p in head_w if p.grad is not None]
    reached = any(float(g.abs().sum()) > 0 for g in grads)
    assert reached is planner_grad
    assert model.head.gate.grad is not None and float(model.head.gate.grad.abs().sum()) > 0
    assert float(model.head.cost_weight.grad.abs()) > 0
    refiner = model.head.refiner.mlp
    assert all(float(p.grad.abs().sum()) > 0 for p in refiner.parameters())


def test_teacher_forcing_feeds_the_planner_the_teacher_map_in_training_only() -> None:
    """With teacher_forcing=1 the decoders read features gained by the teacher's map in
    training (another map: other features, another risk cost of the plan) while the head's own
    prediction, which the distillation terms train, is untouched; in eval mode the teacher's
    map changes nothing. (The untrained plan itself is zero-initialised: it cannot tell.)"""
    from rsd.models import BackboneConfig, ModelConfig, build_model
    from tests.models.batches import make_features

    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    head = RiskHeadConfig(hidden=8, use_deformable=False, teacher_forcing=1.0, gate_init=5.0)
    cfg = ModelConfig(backbone=bb, risk_head=head)
    torch.manual_seed(0)
    model = build_model(cfg, 7, risk_head=True, risk_channels=6, forcing_key="oracle_risk")
    feats = make_features(2)
    empty, full = torch.zeros(2, 6, 160, 64), torch.zeros(2, 6, 160, 64)
    full[:, :, 40:120, 10:54] = 1.0
    with pytest.raises(KeyError, match="oracle_risk"):
        model.train()(feats)
    with torch.no_grad():
        a = model.train()({**feats, "oracle_risk": empty})
        b = model({**feats, "oracle_risk": full})
        c = model.eval()({**feats, "oracle_risk": empty})
        d = model({**feats, "oracle_risk": full})
        e = model(feats)  # evaluation needs no teacher
    for key in ("det_heatmap", "plan_risk_cost"):  # training: the teacher's map is read
        assert (a[key] - b[key]).abs().amax() > 0.5, key
    assert a["plan_risk_cost"].abs().amax() == 0  # an empty teacher map costs nothing
    torch.testing.assert_close(a["risk_logits_feat"], b["risk_logits_feat"])
    for key in ("det_heatmap", "plan_risk_cost", "plan"):  # evaluation: the head's map
        assert torch.equal(c[key], d[key]) and torch.equal(c[key], e[key]), key


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_teacher_forcing_rate_is_a_probability(rate: float) -> None:
    from rsd.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="teacher_forcing"):
        RiskHeadConfig(teacher_forcing=rate)


def test_teacher_forcing_rate_is_per_sample() -> None:
    """At rate 0.3 each sample reads the teacher's map with probability 0.3, independently:
    over 2,000 samples the share lies within 4 standard errors of 0.3, and a sample reads
    either map whole."""
    from rsd.models import BackboneConfig, ModelConfig, build_model

    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    head = RiskHeadConfig(hidden=8, use_deformable=False, teacher_forcing=0.3)
    model = build_model(
        ModelConfig(backbone=bb, risk_head=head),
        7,
        risk_head=True,
        risk_channels=6,
        forcing_key="oracle_risk",
    ).train()
    torch.manual_seed(2)
    student = torch.zeros(2000, 6, 40, 16)
    read = model._forced(student, {"oracle_risk": torch.ones(2000, 6, 160, 64)})
    per_sample = read.flatten(1)
    assert torch.equal(per_sample.amin(1), per_sample.amax(1))  # whole maps, never mixed
    share = per_sample[:, 0].mean().item()
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / 2000) ** 0.5
    assert torch.equal(model.eval()._forced(student, {}), student)
