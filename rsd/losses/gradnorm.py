"""Gradient norm of every loss term: which term actually moves the weights.

A term's share of the total loss says little (a term can be large and flat, or small and
steep); the norm of its gradient says how hard it pulls. Training logs these
(``grad/<term>`` in ``metrics.jsonl``) every ``grad_terms_every`` steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def term_grad_norms(terms: Mapping[str, Tensor], params: Sequence[Tensor]) -> dict[str, float]:
    """``{"grad/<name>": ||d term / d params||_2}`` for every weighted term but ``"loss"``
    (0 for a term that does not depend on ``params``). One backward pass per term; the graph is
    retained, so the caller's ``terms["loss"].backward()`` still works afterwards."""
    out: dict[str, float] = {}
    for name, value in terms.items():
        if name == "loss":
            continue
        if not value.requires_grad:
            out[f"grad/{name}"] = 0.0
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        sq = [g.detach().float().square().sum() for g in grads if g is not None]
        out[f"grad/{name}"] = float(torch.stack(sq).sum().sqrt()) if sq else 0.0
    return out
