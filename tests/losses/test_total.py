"""total_loss: which terms appear, weighting, the loss sum, gradients, batch shapes, and a
real collated batch from the dataset."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rsd.config import ConfigError
from rsd.data.dataset import BEVDataset, collate
from rsd.losses import TERMS, LossWeights, agent_risk_readout, loss_terms, total_loss
from rsd.teacher.risk_map import RiskTargetDataset
from rsd.teacher.schema import ObjectRisk, RiskAssessment
from tests.data.frames import make_frame
from tests.losses.fakes import GRID, STRIDE, make_batch, make_outputs

W = LossWeights()
PLANNING = {"plan_l1", "plan_cls", "plan_collision", "plan_boundary"}
DETECTION = {"det_heatmap", "det_offset", "det_size", "det_yaw", "det_vel"}
DISTILL = {"distill_map", "distill_agent", "distill_rank", "traj_risk_mass"}


def _item(t: torch.Tensor) -> float:
    return t.detach().item()


@pytest.mark.parametrize("b", [1, 3])
def test_every_term_is_a_finite_scalar_with_finite_gradients(b: int) -> None:
    outputs = make_outputs(b)
    out = total_loss(outputs, make_batch(b), W, GRID, STRIDE, risk=True)
    assert set(out) == DETECTION | PLANNING | DISTILL | {"map", "traj_nll", "loss"}
    assert all(v.shape == () and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for name, t in outputs.items():
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


def test_loss_is_the_weighted_sum_of_the_terms() -> None:
    weights = LossWeights(det_size=0.3, plan_l1=2.0, distill_rank=0.7, traj_risk_mass=5.0)
    outputs, batch = make_outputs(2), make_batch(2)
    raw = loss_terms(outputs, batch, weights, GRID, STRIDE, risk=True)
    out = total_loss(outputs, batch, weights, GRID, STRIDE, risk=True)
    assert set(out) == set(raw) | {"loss"} and set(raw) <= set(TERMS)
    expected = 0.0
    for name, value in raw.items():
        assert _item(out[name]) == pytest.approx(getattr(weights, name) * _item(value))
        expected += getattr(weights, name) * _item(value)
    assert _item(out["loss"]) == pytest.approx(expected, rel=1e-6)


def test_baseline_has_no_distillation_and_the_plain_nll() -> None:
    out = total_loss(make_outputs(2), make_batch(2), W, GRID, STRIDE, risk=False)
    assert not DISTILL & set(out) and "traj_nll" not in out and "plan_nll" in out


def test_rsd_nll_is_the_baseline_nll_weighted_by_scene_risk() -> None:
    outputs, batch = make_outputs(2), make_batch(2)
    weights = LossWeights(risk_alpha=2.0)
    plain = loss_terms(outputs, batch, weights, GRID, STRIDE, risk=False)["plan_nll"]
    batch["scene_risk"] = torch.tensor([1.0, 1.0])
    weighted = loss_terms(outputs, batch, weights, GRID, STRIDE, risk=True)["traj_nll"]
    assert _item(weighted) == pytest.approx(3.0 * _item(plain), rel=1e-5)
    batch["risk_valid"][:] = False  # no teacher answer: weight 1
    unweighted = loss_terms(outputs, batch, weights, GRID, STRIDE, risk=True)["traj_nll"]
    assert _item(unweighted) == pytest.approx(_item(plain), rel=1e-5)


def test_risk_imitation_alpha_weighs_the_imitation_terms_per_sample() -> None:
    outputs, batch = make_outputs(2), make_batch(2)
    plain = loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)
    base = loss_terms(
        outputs, batch, LossWeights(risk_imitation_alpha=3.0), GRID, STRIDE, risk=False
    )
    batch["scene_risk"] = torch.tensor([1.0, 0.0])  # only sample 0 is risky: weight 4 vs 1
    w = LossWeights(risk_imitation_alpha=3.0)
    one = {k: v for k, v in batch.items()}
    per = []
    for i in range(2):  # each sample alone, unweighted
        sub = {
            k: v[i : i + 1] if torch.is_tensor(v) and v.shape[:1] == (2,) else v
            for k, v in one.items()
        }
        so = {k: v[i : i + 1] for k, v in outputs.items()}
        per.append(loss_terms(so, sub, W, GRID, STRIDE, risk=True))
    weighted = loss_terms(outputs, batch, w, GRID, STRIDE, risk=True)
    for name in ("plan_l1", "plan_cls"):
        want = (4.0 * _item(per[0][name]) + _item(per[1][name])) / 2
        assert _item(weighted[name]) == pytest.approx(want, rel=1e-5), name
        # the baseline never reads the teacher; the default (0) leaves rsd unweighted
        assert _item(base[name]) == pytest.approx(_item(plain[name]), rel=1e-6), name


def test_plan_event_alpha_weighs_imitation_by_the_experts_departure_in_any_variant() -> None:
    from rsd.losses.planning import event_weights

    outputs, batch = make_outputs(2), make_batch(2)
    batch["ego_future"][0, :, 0] = batch["ego_future"][0, 0, 0]  # sample 0 stops after a step
    w = LossWeights(plan_event_alpha=2.0)
    expert, valid = batch["ego_future"][..., :2].float(), batch["ego_future_valid"].bool()
    ev = event_weights(expert, valid, 2.0, w.plan_event_scale)
    for risk in (False, True):
        per = []
        for i in range(2):  # each sample alone, unweighted
            sub = {
                k: v[i : i + 1] if torch.is_tensor(v) and v.shape[:1] == (2,) else v
                for k, v in batch.items()
            }
            so = {k: v[i : i + 1] for k, v in outputs.items()}
            per.append(loss_terms(so, sub, W, GRID, STRIDE, risk=risk))
        weighted = loss_terms(outputs, batch, w, GRID, STRIDE, risk=risk)
        for name in ("plan_l1", "plan_cls"):
            want = sum(float(ev[i]) * _item(per[i][name]) for i in range(2)) / 2
            assert _item(weighted[name]) == pytest.approx(want, rel=1e-5), name
    assert float(ev[0]) == 3.0 and float(ev[1]) == 1.0  # saturated stop vs cruise
    with pytest.raises(ConfigError, match="plan_event_scale"):
        LossWeights(plan_event_scale=0.0)


def test_terms_are_skipped_when_outputs_or_weights_are_absent() -> None:
    outputs = make_outputs(2, risk=False)
    for key in ("det_heatmap", "det_offset", "det_size", "det_yaw", "det_vel", "plan_scale"):
        del outputs[key]
    out = total_loss(outputs, make_batch(2), W, GRID, STRIDE, risk=True)
    # no risk outputs: only the planning-side risk mass of the rsd terms remains
    assert set(out) == PLANNING | {"map", "traj_risk_mass", "loss"}
    out = total_loss(make_outputs(2), make_batch(2), LossWeights(map=0.0), GRID, STRIDE, risk=True)
    assert "map" not in out
    only_plan = {"plan_traj": make_outputs(1)["plan_traj"]}
    batch = {k: make_batch(1)[k] for k in ("ego_future", "ego_future_valid")}
    assert set(total_loss(only_plan, batch, W, GRID, STRIDE, risk=True)) == {"plan_l1", "loss"}
    # a single-mode planner with only ``plan``: one mode, no classification
    plan = {"plan": make_outputs(2)["plan_traj"][:, 0]}
    assert set(total_loss(plan, make_batch(2), W, GRID, STRIDE, risk=True)) == PLANNING - {
        "plan_cls"
    } | {
        "traj_risk_mass",
        "loss",
    }
    with pytest.raises(ValueError, match="no loss term"):
        total_loss({}, make_batch(1), W, GRID, STRIDE, risk=True)


def test_frames_without_a_teacher_answer_contribute_no_distillation() -> None:
    outputs, batch = make_outputs(2), make_batch(2)
    batch["risk_valid"] = torch.tensor([True, False])
    both = loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)
    # changing frame 1's teacher targets and risk outputs changes no distillation term
    batch["risk_map"][1] = 1.0 - batch["risk_map"][1]
    batch["agent_risk"][1] = 1.0 - batch["agent_risk"][1]
    batch["agent_rank"][1] = torch.tensor([2, 1, 0])
    changed = dict(outputs, risk_map=outputs["risk_map"].detach().clone())
    changed["risk_map"][1] = 0.0
    again = loss_terms(changed, batch, W, GRID, STRIDE, risk=True)
    for name in DISTILL:
        assert _item(again[name]) == pytest.approx(_item(both[name])), name
    batch["risk_valid"][:] = False
    none = loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)
    assert all(_item(none[name]) == 0.0 for name in DISTILL)


def test_agents_outside_the_grid_are_not_distilled() -> None:
    outputs, batch = make_outputs(1), make_batch(1)
    outputs["agent_risk_pred"] = torch.tensor([[0.9, 0.2, 0.0]], requires_grad=True)
    assert _item(loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)["distill_agent"]) == 0.0
    batch["agent_in_grid"][0, 1] = False
    outputs["agent_risk_pred"] = torch.tensor([[0.5, 0.9, 0.0]], requires_grad=True)
    terms = loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)
    # only agent 0 counts: |0.5 - 0.9|; no pair left to rank
    assert _item(terms["distill_agent"]) == pytest.approx(0.4)
    assert _item(terms["distill_rank"]) == 0.0
    # with distill_loss=bce the same agent pays -(0.9 ln 0.5 + 0.1 ln 0.5) = ln 2
    bce = dataclasses.replace(W, distill_loss="bce")
    terms = loss_terms(outputs, batch, bce, GRID, STRIDE, risk=True)
    assert _item(terms["distill_agent"]) == pytest.approx(math.log(2))


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="risk must be True or False"):
        total_loss(make_outputs(1), make_batch(1), W, GRID, STRIDE, risk="vad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="det_heatmap"):
        total_loss(make_outputs(1), make_batch(1), W, GRID, 2, risk=True)
    with pytest.raises(ConfigError, match="plan_l1"):
        LossWeights(plan_l1=-1.0)
    with pytest.raises(ConfigError, match="det_min_overlap"):
        LossWeights(det_min_overlap=1.0)
    with pytest.raises(ConfigError, match="distill_loss"):
        LossWeights(distill_loss="l2")
    assert dataclasses.replace(W, map=0.0).map == 0.0  # frozen, but replaceable


def test_a_collated_dataset_batch_goes_through() -> None:
    """Real keys and dtypes: frames with 3 and 1 agents (padding), one teacher answer."""
    rng = np.random.default_rng(0)
    frames = [make_frame("highway", 1, 40, rng, n_agents=3), make_frame("highway", 1, 45, rng, 1)]
    answer = RiskAssessment(
        frame_id=frames[0].frame_id,
        teacher_id="t",
        prompt_version="v",
        scene_risk=0.6,
        objects=[
            ObjectRisk(object_id=a.id, risk=0.9 - 0.3 * i, rank=i + 1)
            for i, a in enumerate(frames[0].agents)
        ],
    )
    data = RiskTargetDataset(BEVDataset(frames, grid=GRID), {frames[0].frame_id: answer})
    batch = collate([data[0], data[1]])
    assert batch["targets"]["risk_valid"].tolist() == [True, False]
    outputs = make_outputs(2)
    outputs["agent_risk_pred"] = torch.rand(2, 3, requires_grad=True)
    out = total_loss(outputs, batch["targets"], W, GRID, STRIDE, risk=True)
    assert set(out) == DETECTION | PLANNING | DISTILL | {"map", "traj_nll", "loss"}
    out["loss"].backward()
    assert all(torch.isfinite(t.grad).all() for t in outputs.values())
    assert outputs["agent_risk_pred"].grad[1].abs().sum() == 0  # no answer for frame 1


def test_the_agent_risk_is_read_out_of_the_risk_logits_at_the_target_boxes() -> None:
    """Models never see boxes: without ``agent_risk_pred`` the loss reads the student's map at
    ``agent_boxes`` and scores exactly what the read-out gives."""
    outputs, batch = make_outputs(2, risk=False), make_batch(2)
    logits = torch.randn(2, 1, *GRID.shape, generator=torch.Generator().manual_seed(3))
    outputs["risk_logits"] = logits.requires_grad_()
    outputs["risk_map"] = logits.sigmoid()
    read = loss_terms(outputs, batch, W, GRID, STRIDE, risk=True)
    pred = agent_risk_readout(logits.detach(), batch["agent_boxes"], GRID).sigmoid()
    given = loss_terms(dict(outputs, agent_risk_pred=pred), batch, W, GRID, STRIDE, risk=True)
    for name in ("distill_agent", "distill_rank"):
        assert _item(read[name]) == pytest.approx(_item(given[name])), name
    read["distill_agent"].backward()
    assert outputs["risk_logits"].grad.abs().sum() > 0


def test_distill_full_grid_gives_the_full_grid_terms_of_the_upsampled_map() -> None:
    """``loss.distill_full_grid``: the terms of a feature-grid output equal those of the same
    logits upsampled to the full grid by the model (the earlier recipe, bit for bit); the
    default reads the feature grid and the max-pooled target instead, a different value."""
    outputs, batch = make_outputs(2, risk=False), make_batch(2)
    gen = torch.Generator().manual_seed(5)
    feat = torch.randn(2, 1, GRID.height // STRIDE, GRID.width // STRIDE, generator=gen)
    full = torch.nn.functional.interpolate(
        feat, size=GRID.shape, mode="bilinear", align_corners=False
    )
    old = loss_terms(
        dict(outputs, risk_logits=full, risk_map=full.sigmoid()), batch, W, GRID, STRIDE, risk=True
    )
    full_w = dataclasses.replace(W, distill_full_grid=True)
    new = loss_terms(dict(outputs, risk_logits_feat=feat), batch, full_w, GRID, STRIDE, risk=True)
    for name in ("distill_map", "distill_agent", "distill_rank"):
        assert _item(new[name]) == _item(old[name]), name
    coarse = loss_terms(dict(outputs, risk_logits_feat=feat), batch, W, GRID, STRIDE, risk=True)
    assert _item(coarse["distill_map"]) != pytest.approx(_item(old["distill_map"]))
