"""Both backbones, with and without the RiskHead: the output contract, attach/detach, gradients."""

from __future__ import annotations

import pytest
import torch

from rsd.config import ConfigError, from_dict
from rsd.losses.risk import agent_risk_readout
from rsd.models import (
    BackboneConfig,
    BEVBackbone,
    CNNPlanner,
    ModelConfig,
    RiskDistilled,
    VADLite,
    attach_risk_head,
    build_model,
    detach,
    with_full_risk_map,
)
from rsd.models.plan_head import waypoints_from_steps
from rsd.scene import FUTURE_STEPS, SIM_CLASSES, AgentClass
from tests.models.batches import GRID, IN_CHANNELS, make_agent_boxes, make_features

H, W = GRID.shape
M, T = 6, 6


def _model(kind: str, risk: bool, **backbone) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, backbone=BackboneConfig(**backbone))
    return build_model(cfg, IN_CHANNELS, GRID, risk_head=risk).eval()


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("risk", [False, True])
@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_output_shapes(kind: str, risk: bool, b: int) -> None:
    model = _model(kind, risk)
    assert isinstance(model, BEVBackbone)
    batch = make_features(b)
    with torch.no_grad():
        feats = model.encode(batch)
        out = model(batch)
        # the per-agent read-out of the risk map happens on the loss side, at the target boxes
        agent_risk = (
            agent_risk_readout(out["risk_logits_feat"], make_agent_boxes(b, k=5), GRID)
            if risk
            else None
        )
    s = model.feature_stride
    assert feats.shape == (b, model.bev_channels, H // s, W // s)
    expected = {
        "plan_traj": (b, M, T, 2),
        "plan_scale": (b, M, T, 2),
        "plan_logits": (b, M),
        "plan": (b, T, 2),
        "map_logits": (b, 2, H, W),
    }
    if kind == "vad":
        hf, wf = H // s, W // s
        expected |= {
            "det_heatmap": (b, 3, hf, wf),
            "det_offset": (b, 2, hf, wf),
            "det_size": (b, 3, hf, wf),
            "det_yaw": (b, 2, hf, wf),
            "det_vel": (b, 2, hf, wf),
        }
    if risk:
        expected |= {
            "risk_logits_feat": (b, 1, H // s, W // s),  # full-grid maps only on request
            "plan_logits_raw": (b, M),  # the risk cost re-weighs the modes
            "plan_risk_cost": (b, M),
        }
        assert agent_risk.shape == (b, 5)
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert (out["plan_scale"] >= 0.05).all()
    best = out["plan_logits"].argmax(1)
    assert torch.equal(out["plan"], out["plan_traj"][torch.arange(b), best])
    if risk:
        full = with_full_risk_map(out, (H, W))
        assert full["risk_logits"].shape == full["risk_map"].shape == (b, 1, H, W)
        assert torch.equal(full["risk_map"], full["risk_logits"].sigmoid())
        assert set(full) - set(out) == {"risk_logits", "risk_map"}  # out itself unchanged
        # bilinear, same extent: a map constant on the feature grid stays that constant
        flat = {"risk_logits_feat": torch.full_like(out["risk_logits_feat"], -1.5)}
        assert torch.equal(
            with_full_risk_map(flat, (H, W))["risk_logits"], torch.full((b, 1, H, W), -1.5)
        )


def test_feature_stride_2() -> None:
    model = _model("vad", True, feature_stride=2)
    with torch.no_grad():
        out = model(make_features(2))
    assert out["det_heatmap"].shape == (2, 3, H // 2, W // 2)
    assert out["risk_logits_feat"].shape == (2, 1, H // 2, W // 2)


@pytest.mark.parametrize("stride", [2, 4])
def test_patch_stem_and_channels_last(stride: int) -> None:
    """The patchify stem gives the features at the same stride and shape as the conv stem;
    channels_last changes the memory layout only: same parameters, same outputs (to float
    rounding) as NCHW, and gradients reach the stem."""
    conv = _model("vad", False, feature_stride=stride)
    patch = _model("vad", False, feature_stride=stride, stem="patch")
    batch = make_features(2)
    with torch.no_grad():
        assert patch.encode(batch).shape == conv.encode(batch).shape
    stem = patch.encoder[0][0]
    assert stem.kernel_size == (stride, stride) and stem.stride == (stride, stride)
    assert _n_params(patch) < _n_params(conv)
    nhwc = _model("vad", False, feature_stride=stride, stem="patch", channels_last=True)
    nhwc.load_state_dict(patch.state_dict())
    assert nhwc.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        a, b = patch(batch), nhwc(batch)
    assert torch.allclose(a["plan_traj"], b["plan_traj"], atol=1e-4)
    nhwc.train()
    nhwc(batch)["map_logits"].sum().backward()
    assert nhwc.encoder[0][0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="stem"):
        BackboneConfig(stem="vit")


@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_untrained_plan_is_the_constant_speed_prior(kind: str) -> None:
    """The output layer starts at zero: every mode drives straight on at the current speed."""
    batch = make_features(2)
    with torch.no_grad():
        out = _model(kind, False)(batch)
    speed = batch["ego_status"][:, 0]
    t = torch.arange(1, T + 1) * 0.5
    expected = torch.stack([speed[:, None] * t, torch.zeros(2, T)], -1)
    torch.testing.assert_close(out["plan"], expected)
    torch.testing.assert_close(out["plan_traj"], expected[:, None].expand(-1, M, -1, -1))


def test_without_the_speed_prior_an_untrained_plan_stands_still() -> None:
    """``speed_prior=False``: nothing is added to the predicted steps, so the zero-initialised
    planner starts at the origin whatever the speed; the speed still reaches the queries."""
    batch = make_features(2)
    model = _model("vad", False, speed_prior=False)
    with torch.no_grad():
        out = model(batch)
    assert torch.equal(out["plan_traj"], torch.zeros_like(out["plan_traj"]))
    torch.nn.init.normal_(model.plan_out.mlp[-1].weight)
    faster = dict(batch, ego_status=batch["ego_status"].clone())
    faster["ego_status"][:, 0] += 5.0
    with torch.no_grad():
        assert not torch.allclose(model(batch)["plan"], model(faster)["plan"])


def test_waypoints_are_cumulative_steps() -> None:
    steps = torch.tensor([[[[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]]])  # (1, 1, 3, 2)
    traj = waypoints_from_steps(steps, None, step_scale=2.0)
    assert torch.equal(traj, torch.tensor([[[[2.0, 0.0], [4.0, 2.0], [4.0, 0.0]]]]))


@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_plan_reads_command_and_ego_status_only_when_asked(kind: str) -> None:
    for use_status in (True, False):
        model = _model(kind, False, use_ego_status=use_status)
        torch.nn.init.normal_(model.plan_out.mlp[-1].weight)  # leave the zero start
        a = make_features(2)
        b = dict(a, ego_status=a["ego_status"] + 1.0)
        c = dict(a, command=(a["command"] + 1) % 5)
        with torch.no_grad():
            pa, pb, pc = (model(x)["plan_traj"] for x in (a, b, c))
        assert not torch.allclose(pa, pc)
        assert torch.equal(pa, pb) != use_status


@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_plan_reads_the_route_points_only_when_asked(kind: str) -> None:
    """With ``use_route`` the plan changes with the route's points; without, it does not;
    features without a route read as ``route_valid`` 0 with zero points."""
    for use_route in (True, False):
        model = _model(kind, False, use_route=use_route)
        torch.nn.init.normal_(model.plan_out.mlp[-1].weight)  # leave the zero start
        a = make_features(2)
        b = dict(a, route=a["route"] + torch.tensor([0.0, 5.0]))
        none = {k: v for k, v in a.items() if k not in ("route", "route_valid")}
        zeros = dict(a, route=torch.zeros_like(a["route"]), route_valid=torch.zeros(2))
        with torch.no_grad():
            pa, pb, pn, pz = (model(x)["plan_traj"] for x in (a, b, none, zeros))
        assert torch.equal(pa, pb) != use_route
        assert torch.equal(pn, pz)


@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_attach_then_detach_restores_the_baseline_exactly(kind: str) -> None:
    base = _model(kind, False)
    batch = make_features(3)
    with torch.no_grad():
        before = base(batch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    rsd_model = attach_risk_head(base, grid=GRID).eval()
    with torch.no_grad():
        attached = rsd_model(batch)
    assert not torch.equal(attached["plan_logits"], before["plan_logits"]) or not torch.equal(
        attached["map_logits"], before["map_logits"]
    )  # the modulation changes what the heads read
    restored = detach(rsd_model)
    assert restored is base
    assert restored.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in restored.state_dict().items())
    with torch.no_grad():
        after = restored(batch)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("kind", ["vad", "cnn"])
def test_gradients_reach_the_risk_head_and_the_gate(kind: str) -> None:
    model = _model(kind, True).train()
    assert isinstance(model, RiskDistilled)
    out = model(make_features(2))
    # Distillation loss alone: every head parameter but the planner's use of the map (the
    # gate, the cost weight, the plan refinement) learns.
    out["risk_logits_feat"].sigmoid().mean().backward(retain_graph=True)
    head = model.head
    assert head.gate.grad is None or torch.all(head.gate.grad == 0)
    for name, p in head.named_parameters():
        if name.startswith("refiner."):
            assert p.grad is None, name
        elif name not in ("gate", "cost_weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # The mode selection sees the risk: the mode logits reach the cost weight, not the head
    # (the planner reads a stop-gradient copy of the map by default: RiskHeadConfig.planner_grad).
    model.zero_grad()
    out["plan_logits"].square().sum().backward(retain_graph=True)
    assert head.cost_weight.grad.abs() > 0
    assert head.out.weight.grad is None or head.out.weight.grad.abs().sum() == 0
    # A task loss reaches the gate (the modulation), again not the head's output layer.
    model.zero_grad()
    out["map_logits"].square().mean().backward()
    assert head.gate.grad.abs().sum() > 0
    assert head.out.weight.grad is None or head.out.weight.grad.abs().sum() == 0


def test_risk_head_overhead_is_at_most_ten_percent_of_vadlite() -> None:
    rsd_model = _model("vad", True)
    ratio = _n_params(rsd_model.head) / _n_params(detach(rsd_model))
    assert 0 < ratio <= 0.10
    assert _n_params(rsd_model) == _n_params(rsd_model.head) + _n_params(rsd_model.model)


def test_backbones_are_small_and_different() -> None:
    vad, cnn = VADLite(IN_CHANNELS), CNNPlanner(IN_CHANNELS)
    assert _n_params(vad) < 3_000_000 and _n_params(cnn) < 3_000_000
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in cnn.modules())


def test_config_from_dict_and_validation() -> None:
    cfg = from_dict(ModelConfig, {"kind": "cnn", "backbone": {"channels": 32}})
    model = build_model(cfg, IN_CHANNELS)
    assert isinstance(model, CNNPlanner) and model.bev_channels == 32
    with pytest.raises(ConfigError, match="feature_stride"):
        BackboneConfig(feature_stride=3)
    with pytest.raises(ConfigError, match="kind"):
        ModelConfig(kind="transformer")  # type: ignore[arg-type]


def test_risk_head_refuses_a_batch_on_another_grid() -> None:
    model = _model("cnn", True)
    batch = make_features(1)
    batch["bev"] = batch["bev"][..., :32]
    with pytest.raises(ValueError, match="grid"):
        model(batch)


def test_horizon_and_classes_must_match_the_scene() -> None:
    assert BackboneConfig().horizon == FUTURE_STEPS
    assert BackboneConfig().n_classes == len(SIM_CLASSES) == 3
    assert from_dict(ModelConfig, {"backbone": {"n_classes": len(AgentClass)}})
    with pytest.raises(ConfigError, match="backbone.horizon"):
        BackboneConfig(horizon=FUTURE_STEPS + 1)
    for bad in (0, len(AgentClass) + 1):
        with pytest.raises(ConfigError, match="backbone.n_classes"):
            from_dict(ModelConfig, {"backbone": {"n_classes": bad}})
