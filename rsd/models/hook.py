"""The RiskHead on a model you don't own: attached by a forward hook on a named module.

:func:`attach_risk_head` (in :mod:`rsd.models.risk_head`) wraps rsd's own
:class:`~rsd.models.protocol.BEVBackbone` models, which split ``encode`` / ``decode``. A
third-party model (VAD, UniAD, a BEVFormer encoder...) has no such split, but it has *some*
module whose output is the BEV feature map its heads read. :func:`hook_risk_head` registers a
forward hook on that module (named as in ``model.named_modules()``, e.g.
``"pts_bbox_head.transformer.encoder"``) which, on every forward pass of the model:

1. reads the module's output as BEV features, either ``(B, C, H, W)`` (``layout="bchw"``) or
   BEVFormer's flattened queries ``(B, H*W, C)`` (``layout="tokens"``, with ``grid=(H, W)``;
   token ``h * W + w`` is cell ``(h, w)``, row-major);
2. runs a :class:`~rsd.models.risk_head.RiskHead` on them -> risk logits ``(B, 1, H, W)``,
   kept as :attr:`RiskHooked.risk_logits`;
3. hands the modulated features ``F * (1 + gate * sigmoid(logits))`` back to the model, in
   the module's own layout, so every later layer reads them.

The model is neither copied nor edited: :meth:`RiskHooked.detach` removes the hook and returns
the model, whose outputs are then bit for bit what they were before attaching. The head is a
separate module owned by the :class:`RiskHooked` wrapper (``wrapper.parameters()`` = model +
head; ``wrapper.head.parameters()`` alone to train only the head).

Usage::

    rsd_model = hook_risk_head(model, "encoder", channels=256, layout="tokens", grid=(200, 200))
    out = rsd_model(*inputs)                     # the model's own outputs, unchanged in form
    loss = task_loss(out) + l1(rsd_model.risk_map(), risk_labels)   # (B, 1, H, W) each
    model = rsd_model.detach()                   # the original model, hook removed
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from rsd.models.config import RiskHeadConfig
from rsd.models.risk_head import RiskHead

BEVLayout = Literal["bchw", "tokens"]
"""``bchw``: ``(B, C, H, W)`` maps; ``tokens``: ``(B, H*W, C)`` flattened BEV queries."""


def _find_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        near = [n for n in modules if n and (name in n or n.endswith(name.split(".")[-1]))]
        hint = f"; similar: {', '.join(near[:5])}" if near else ""
        raise ValueError(f"{type(model).__name__} has no module named {name!r}{hint}")
    return modules[name]


class RiskHooked(nn.Module):
    """A model with a :class:`RiskHead` hooked onto the output of one of its modules.

    ``forward(*args, **kwargs)`` is the model's own forward (same outputs, same form); the
    risk logits of the last forward pass are :attr:`risk_logits` ``(B, 1, H, W)`` on the
    feature grid (use :meth:`risk_map` to read them at another size).
    """

    def __init__(
        self,
        model: nn.Module,
        module_name: str,
        head: RiskHead,
        layout: BEVLayout = "bchw",
        grid: tuple[int, int] | None = None,
        output_index: int | None = None,
    ) -> None:
        super().__init__()
        if layout not in ("bchw", "tokens"):
            raise ValueError(f"layout {layout!r}: must be 'bchw' or 'tokens'")
        if layout == "tokens" and (grid is None or len(grid) != 2 or min(grid) < 1):
            raise ValueError("layout 'tokens' needs grid=(H, W), the BEV query grid")
        self.model = model
        self.head = head
        self.module_name = module_name
        self.layout: BEVLayout = layout
        self.grid = tuple(grid) if grid is not None else None
        self.output_index = output_index
        self.risk_logits: Tensor | None = None
        target = _find_module(model, module_name)
        self._handle: RemovableHandle | None = target.register_forward_hook(self._hook)

    @property
    def attached(self) -> bool:
        return self._handle is not None

    def _to_maps(self, feats: Tensor) -> Tensor:
        """The module's output -> ``(B, C, H, W)``."""
        if self.layout == "bchw":
            if feats.dim() != 4:
                raise ValueError(
                    f"module {self.module_name!r} gave {tuple(feats.shape)}, not (B, C, H, W)"
                )
            return feats
        h, w = self.grid  # type: ignore[misc]
        if feats.dim() != 3 or feats.shape[1] != h * w:
            raise ValueError(
                f"module {self.module_name!r} gave {tuple(feats.shape)}, not (B, H*W={h * w}, C)"
            )
        return feats.transpose(1, 2).reshape(feats.shape[0], feats.shape[2], h, w)

    def _from_maps(self, maps: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> the module's own layout."""
        if self.layout == "bchw":
            return maps
        return maps.flatten(2).transpose(1, 2)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        feats = output if self.output_index is None else output[self.output_index]
        if not isinstance(feats, Tensor):
            raise TypeError(
                f"module {self.module_name!r} returned {type(feats).__name__}; "
                "give output_index for a tuple or list output"
            )
        maps = self._to_maps(feats)
        logits = self.head(maps)
        self.risk_logits = logits
        modulated = self._from_maps(self.head.modulate(maps, logits.sigmoid()))
        if self.output_index is None:
            return modulated
        replaced = list(output)
        replaced[self.output_index] = modulated
        return type(output)(replaced) if isinstance(output, tuple) else replaced

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.attached:
            raise RuntimeError("the RiskHead was detached from this model")
        self.risk_logits = None
        out = self.model(*args, **kwargs)
        if self.risk_logits is None:
            raise RuntimeError(
                f"module {self.module_name!r} did not run in the model's forward pass"
            )
        return out

    def risk_map(self, size: tuple[int, int] | None = None, logits: bool = False) -> Tensor:
        """The last forward's risk ``(B, 1, H, W)``, probabilities (``logits=False``) or
        logits, bilinearly resampled to ``size`` = ``(H', W')`` when given (e.g. the grid of
        the risk labels, which must share the feature grid's axes and extent)."""
        if self.risk_logits is None:
            raise RuntimeError("no forward pass yet")
        out = self.risk_logits
        if size is not None and tuple(size) != tuple(out.shape[-2:]):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out if logits else out.sigmoid()

    def detach(self) -> nn.Module:
        """Remove the hook; the model itself (same object) computes exactly what it did."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.risk_logits = None
        return self.model


def hook_risk_head(
    model: nn.Module,
    module_name: str,
    channels: int,
    layout: BEVLayout = "bchw",
    grid: tuple[int, int] | None = None,
    cfg: RiskHeadConfig | None = None,
    output_index: int | None = None,
) -> RiskHooked:
    """Hook a fresh :class:`RiskHead` onto ``model``'s module ``module_name``, whose output
    is the BEV feature map with ``channels`` channels, in ``layout`` (``"tokens"`` needs
    ``grid=(H, W)``); ``output_index`` picks the features out of a tuple/list output. The head
    is created on the device and dtype of the model's first parameter."""
    head = RiskHead(channels, cfg)
    first = next(model.parameters(), None)
    if first is not None:
        head = head.to(device=first.device, dtype=first.dtype)
    return RiskHooked(model, module_name, head, layout, grid, output_index)
