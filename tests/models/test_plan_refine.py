"""The RiskHead's risk-aware plan refinement (``RiskHeadConfig.refine``): zero-initialised it
changes nothing; trained, it moves the plan only where the map marks risk."""

from __future__ import annotations

import pytest
import torch

from rsd.geometry import BEVGrid
from rsd.models import BackboneConfig, ModelConfig, RiskHeadConfig, build_model
from rsd.models.risk_head import PlanRefiner
from tests.models.batches import make_features


def _pair(n_modes: int, oracle: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same wrapped model with and without the refinement (shared weights elsewhere)."""
    bb = BackboneConfig(
        stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4, n_modes=n_modes
    )
    key = "oracle_risk" if oracle else None
    models = []
    for refine in (True, False):
        torch.manual_seed(0)
        cfg = ModelConfig(backbone=bb, risk_head=RiskHeadConfig(hidden=8, refine=refine))
        models.append(build_model(cfg, 7, risk_head=True, risk_channels=6, oracle_key=key))
    with_refine, without = models
    with torch.no_grad():  # away from the zero-initialised plan output: plans are not straight
        for p in with_refine.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    missing = without.load_state_dict(with_refine.state_dict(), strict=False)
    assert all(k.startswith("head.refiner.") for k in missing.unexpected_keys)
    assert not missing.missing_keys
    return with_refine.eval(), without.eval()


@pytest.mark.parametrize(("n_modes", "oracle"), [(1, False), (6, False), (1, True)])
def test_zero_initialised_refinement_changes_nothing(n_modes: int, oracle: bool) -> None:
    with_refine, without = _pair(n_modes, oracle)
    feats = make_features(3)
    if oracle:
        maps = torch.zeros(3, 6, 160, 64)
        maps[1, :, 60:90, 24:40] = 1.0
        feats["oracle_risk"] = maps
    with torch.no_grad():
        a, b = with_refine(feats), without(feats)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a non-zero refinement does move the plan: the comparison above is not vacuous
    with torch.no_grad():
        with_refine.head.refiner.mlp[-1].bias.fill_(0.5)
        moved = with_refine(feats)
    assert not torch.equal(moved["plan"], b["plan"])
    best = moved["plan_logits"].argmax(dim=1)  # the plan is the chosen mode, refined
    assert torch.equal(moved["plan"], moved["plan_traj"][torch.arange(3), best])


def _toy() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, BEVGrid]:
    """Two frames with the same straight one-mode plan (x = 2.5 .. 15 m, y = 0): frame 0's
    space-time map (feature grid, 2 m cells) marks the cells covering x in [8, 12], y in
    [-2, 2] at every step, frame 1's is empty. The target swerves 2 m left at the waypoints
    just before and in the cell (t = 2, 3: x = 7.5, 10) when it is risky, straight otherwise."""
    grid = BEVGrid()
    risk = torch.zeros(2, 6, 40, 16)
    risk[0, :, 22:24, 7:9] = 1.0  # rows (56 - x) / 2, cols (16 - y) / 2
    x = 2.5 * torch.arange(1, 7, dtype=torch.float32)
    traj = torch.stack([x, torch.zeros(6)], -1)[None, None].repeat(2, 1, 1, 1)  # (2, 1, 6, 2)
    target = traj.clone()
    target[0, 0, 2:4, 1] = 2.0
    return risk, traj, target, grid


def test_trained_refinement_swerves_only_around_a_risky_cell() -> None:
    torch.manual_seed(0)
    risk, traj, target, grid = _toy()
    refiner = PlanRefiner(RiskHeadConfig())
    torch.testing.assert_close(refiner(risk, traj, grid), traj, rtol=0, atol=0)
    opt = torch.optim.Adam(refiner.parameters(), lr=1e-2)
    for _ in range(300):
        loss = (refiner(risk, traj, grid) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = refiner(risk, traj, grid)
    risky_y, empty_y = out[0, 0, :, 1], out[1, 0, :, 1]
    # same waypoints, same time inputs: only the map tells the two frames apart
    assert bool((risky_y[2:4] > 1.5).all()), risky_y
    assert float(empty_y.abs().max()) < 0.3, empty_y
    assert float(out[..., 0].sub(traj[..., 0]).abs().max()) < 0.3  # no change along x


def test_checkpoint_without_the_refinement_loads_as_the_identity() -> None:
    """A state dict saved before the refinement existed loads into a refining model (the
    refinement comes in zero-initialised) and gives the old model's outputs bit for bit; a
    partial refinement state is still an error."""
    with_refine, without = _pair(1, False)
    with torch.no_grad():
        with_refine.head.refiner.mlp[-1].weight.fill_(0.3)  # a trained-looking refinement
    old_state = without.state_dict()
    with_refine.load_state_dict(old_state)
    feats = make_features(2)
    with torch.no_grad():
        a, b = with_refine(feats), without(feats)
    assert all(torch.equal(a[k], b[k]) for k in b)
    partial = {**old_state, "head.refiner.mlp.0.bias": torch.zeros(16)}
    with pytest.raises(RuntimeError, match="refiner"):
        with_refine.load_state_dict(partial)
