"""The RiskHead hooked onto a model rsd does not own: a small BEVFormer-like encoder.

The model below is written the way third-party BEV models are (learned BEV queries attending
to image tokens, a flattened ``(B, H*W, C)`` BEV layout, a planner reading the BEV tokens),
with no rsd interface at all. The hook path must hand the modulated features back to it,
learn from per-frame risk maps read from a labels file, and leave it exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rsd.losses.risk import distill_map_loss
from rsd.models import RiskHeadConfig, RiskHooked, hook_risk_head
from rsd.pipeline.export import FORMAT_VERSION, MAPS_NAME, META_NAME

BEV_H, BEV_W, DIM = 8, 6, 16


class BEVEncoderLayer(nn.Module):
    """BEVFormer's order: self-attention over BEV queries, spatial cross-attention (each
    query samples the image features at its reference point, with ``grid_sample``), FFN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.cross_proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, query: torch.Tensor, img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """query (B, H*W, C), img (B, C, h, w), ref (H*W, 2) in [-1, 1] -> (B, H*W, C)."""
        query = self.norms[0](query + self.self_attn(query, query, query)[0])
        grid = ref[None, :, None].expand(img.shape[0], -1, -1, -1)  # (B, H*W, 1, 2)
        sampled = nn.functional.grid_sample(img, grid, align_corners=False)[..., 0]
        query = self.norms[1](query + self.cross_proj(sampled.transpose(1, 2)))
        return self.norms[2](query + self.ffn(query))


class BEVEncoder(nn.Module):
    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(BEVEncoderLayer(dim) for _ in range(layers))
        # reference point of BEV cell (h, w) in the image: a fixed "camera" mapping
        ys = (torch.arange(BEV_H) + 0.5) / BEV_H * 2 - 1
        xs = (torch.arange(BEV_W) + 0.5) / BEV_W * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        self.register_buffer("ref", torch.stack([gx, gy], -1).reshape(-1, 2))

    def forward(self, query: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            query = layer(query, img, self.ref)
        return query  # (B, H*W, C): BEVFormer's bev_embed layout


class TinyBEVFormer(nn.Module):
    """Image (B, 3, 32, 32) -> {"bev_embed": (B, H*W, C), "plan": (B, 6, 2), "occ": (B, H*W)}."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, DIM, 4, stride=4), nn.ReLU())
        self.bev_queries = nn.Embedding(BEV_H * BEV_W, DIM)
        self.encoder = BEVEncoder(DIM)
        self.occ_head = nn.Linear(DIM, 1)
        self.plan_head = nn.Linear(DIM, 12)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        query = self.bev_queries.weight[None].expand(img.shape[0], -1, -1)
        bev = self.encoder(query, self.backbone(img))
        plan = self.plan_head(bev.mean(dim=1)).reshape(-1, 6, 2)
        return {"bev_embed": bev, "plan": plan, "occ": self.occ_head(bev)[..., 0]}


class TinyConvBEV(nn.Module):
    """A (B, C, H, W) BEV model whose neck returns a tuple (features, aux)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, DIM, 3, padding=1)
        self.neck = Neck()
        self.head = nn.Conv2d(DIM, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, aux = self.neck(self.stem(x))
        return self.head(feats) + aux.mean()


class Neck(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(DIM, DIM, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, y.abs()


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return {k: v.clone() for k, v in model(x).items()}


def test_detach_restores_the_outputs_bit_for_bit() -> None:
    torch.manual_seed(0)
    model = TinyBEVFormer()
    x = _images(3, 1)
    before = _outputs(model, x)
    rsd = hook_risk_head(model, "encoder", DIM, layout="tokens", grid=(BEV_H, BEV_W))
    rsd.eval()
    with torch.no_grad():
        hooked = rsd(x)
    # the modulated features reached the model: its own heads read them
    assert not torch.equal(hooked["bev_embed"], before["bev_embed"])
    assert not torch.equal(hooked["plan"], before["plan"])
    assert rsd.risk_logits is not None and rsd.risk_logits.shape == (3, 1, BEV_H, BEV_W)
    assert rsd.detach() is model and not rsd.attached
    after = _outputs(model, x)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert set(model.state_dict()) == set(TinyBEVFormer().state_dict())  # no head inside
    with pytest.raises(RuntimeError, match="detached"):
        rsd(x)


def test_token_layout_modulates_the_right_cells() -> None:
    """A head whose logits are +inf at one cell and -inf elsewhere (gate 1) doubles exactly
    that cell's token h * W + w and leaves every other token as it was."""
    torch.manual_seed(0)
    model = TinyBEVFormer().eval()
    x = _images(2, 2)
    plain = _outputs(model, x)["bev_embed"]
    rsd = hook_risk_head(
        model, "encoder", DIM, layout="tokens", grid=(BEV_H, BEV_W), cfg=RiskHeadConfig()
    ).eval()
    r, c = 5, 2
    logits = torch.full((2, 1, BEV_H, BEV_W), -1e4)
    logits[:, :, r, c] = 1e4
    rsd.head.forward = lambda feats: logits  # type: ignore[method-assign]
    with torch.no_grad():
        got = rsd(x)["bev_embed"]
    k = r * BEV_W + c
    torch.testing.assert_close(got[:, k], 2 * plain[:, k])
    others = torch.ones(BEV_H * BEV_W, dtype=torch.bool)
    others[k] = False
    torch.testing.assert_close(got[:, others], plain[:, others])


def test_bchw_module_with_tuple_output() -> None:
    torch.manual_seed(0)
    model = TinyConvBEV()
    x = torch.randn(2, 3, 10, 12)
    before = _outputs_plain(model, x)
    untupled = hook_risk_head(model, "neck", DIM).eval()
    with pytest.raises(TypeError, match="output_index"):
        untupled(x)
    untupled.detach()
    rsd = hook_risk_head(model, "neck", DIM, output_index=0).eval()
    with torch.no_grad():
        assert not torch.equal(rsd(x), before)
    assert rsd.risk_map().shape == (2, 1, 10, 12)
    assert rsd.risk_map(size=(20, 24)).shape == (2, 1, 20, 24)
    assert torch.equal(_outputs_plain(rsd.detach(), x), before)


def test_head_follows_the_models_dtype() -> None:
    model = TinyBEVFormer().double()
    rsd = hook_risk_head(model, "encoder", DIM, layout="tokens", grid=(BEV_H, BEV_W))
    assert rsd.head.gate.dtype == torch.float64
    out = rsd(_images(2, 0).double())
    assert out["plan"].dtype == torch.float64 and rsd.risk_map().dtype == torch.float64


def _outputs_plain(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x).clone()


def test_bad_module_name_and_shapes_are_named() -> None:
    model = TinyBEVFormer()
    with pytest.raises(ValueError, match="no module named 'encodr'"):
        hook_risk_head(model, "encodr", DIM, layout="tokens", grid=(BEV_H, BEV_W))
    with pytest.raises(ValueError, match="grid"):
        hook_risk_head(model, "encoder", DIM, layout="tokens")
    rsd = hook_risk_head(model, "encoder", DIM, layout="tokens", grid=(4, 4))
    with pytest.raises(ValueError, match=r"not \(B, H\*W=16, C\)"):
        rsd(_images(1, 0))
    rsd.detach()
    rsd = hook_risk_head(model, "encoder", DIM)  # tokens taken for maps
    with pytest.raises(ValueError, match=r"not \(B, C, H, W\)"):
        rsd(_images(1, 0))


def _write_labels(root: Path, frame_ids: list[str], maps: np.ndarray) -> Path:
    """A tiny labels directory in ``rsd export``'s format (``meta.json`` with the format
    version and grid, ``risk_maps.npz`` with ``maps`` and ``sample_tokens``)."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = np.array(frame_ids, str)
    np.savez_compressed(root / MAPS_NAME, maps=maps.astype(np.float32), sample_tokens=tokens)
    meta = {"format_version": FORMAT_VERSION, "grid": {"rows": BEV_H, "cols": BEV_W}}
    (root / META_NAME).write_text(json.dumps(meta))
    return root


def _read_labels(root: Path) -> tuple[list[str], np.ndarray]:
    """What a third-party trainer does: numpy and json only."""
    meta = json.loads((root / META_NAME).read_text())
    assert meta["format_version"] in (1, 2)  # 2 only adds fields to 1
    with np.load(root / MAPS_NAME) as npz:
        maps, tokens = npz["maps"], [str(t) for t in npz["sample_tokens"]]
    assert maps.shape[1:] == (meta["grid"]["rows"], meta["grid"]["cols"])
    return tokens, maps


def test_training_with_risk_labels_lowers_the_distillation_loss(tmp_path: Path) -> None:
    """Labels: a frame's risky cell is where a bright patch sits in its image (the image
    quadrant -> a BEV block), so the risk is learnable from the input. A few Adam steps on
    head + model lower the L1 between the hooked risk map and the labels."""
    torch.manual_seed(0)
    n = 8
    imgs = _images(n, 3) * 0.1
    maps = np.zeros((n, BEV_H, BEV_W), dtype=np.float32)
    for i in range(n):
        qr, qc = divmod(i % 4, 2)
        imgs[i, :, qr * 16 : qr * 16 + 16, qc * 16 : qc * 16 + 16] += 1.0
        maps[i, qr * 4 : qr * 4 + 4, qc * 3 : qc * 3 + 3] = 1.0
    frame_ids = [f"sample-{i:02d}" for i in range(n)]
    root = _write_labels(tmp_path / "labels", frame_ids, maps)
    ids, loaded = _read_labels(root)
    assert ids == frame_ids
    target = torch.from_numpy(loaded)[:, None]  # (B, 1, H, W)

    model = TinyBEVFormer()
    rsd = hook_risk_head(model, "encoder", DIM, layout="tokens", grid=(BEV_H, BEV_W))
    assert isinstance(rsd, RiskHooked)
    opt = torch.optim.Adam(rsd.parameters(), lr=3e-3)
    valid = torch.ones(n, dtype=torch.bool)
    rsd.train()
    losses = []
    for _ in range(40):
        out = rsd(imgs)
        pred = rsd.risk_map(size=target.shape[-2:])
        distill = distill_map_loss(pred, target, valid, balance_threshold=0.5)
        loss = distill + out["plan"].pow(2).mean()  # the model's own task term rides along
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(distill.detach()))
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.5 * first, (first, last)
    # both the head and the model were trained through the hook
    assert rsd.head.gate.grad is not None and model.bev_queries.weight.grad is not None
    rsd.eval()
    with torch.no_grad():
        rsd(imgs)
        pred = rsd.risk_map() > 0.5
    assert float((pred == (target > 0.5)).float().mean()) > 0.9
