"""The contract between driving models, the RiskHead plug-in, the losses and training.

A driving model is a :class:`BEVBackbone`: it turns input features into BEV feature maps
(``encode``) and reads (possibly modulated) feature maps with its heads (``decode``). The
RiskHead plug-in sits between the two without editing the model. Models receive **features
only** (what the car senses, never ground truth): ``model(features)``, ``encode(features)``,
``decode(feats, features)``; the losses take ``(outputs, targets, ...)``.

Features (``batch["features"]`` from ``rsd.data.dataset.collate``, built by
``rsd.data.features.build_features``), shapes:

* ``bev`` (B, C, H, W) float: rasterised input, H along x (row 0 = far front), W along y
  (col 0 = far left); grid ``rsd.geometry.BEVGrid`` (default 160 x 64 at 0.5 m), channels
  ``rsd.geometry.InputChannel``.
* ``command`` (B,) long (``rsd.scene.Command``); ``ego_status`` (B, 4) = speed m/s, target
  speed m/s, yaw rate rad/s, lane offset m (``rsd.geometry.EgoStatusField``), finite;
  ``ego_status_valid`` (B, 4) float, 1 where that column is known, 0 where it stands in as 0
  (the lane offset of real data without a lane map; rsd's own heads do not read it yet).
  ``route`` (B, 20, 2) float: the route ahead as ego-frame points 2, 4, ..., 40 m along it
  (``rsd.data.features.route_feature``), ``route_valid`` (B,) float, 0 where there is none.

Targets (``batch["targets"]``, built by ``rsd.data.targets.build_targets`` and, for RSD, by
``rsd.teacher.risk_map.RiskTargetDataset``), never seen by a model:

* ``ego_future`` (B, T=6, 3) x, y, yaw; ``ego_future_valid`` (B, T); ``ego_past`` (B, P=4, 3)
  + ``ego_past_valid``; ``ego_size`` (B, 3) = l, w, h; ``agent_boxes`` (B, K, 8) = x, y, l, w,
  h, yaw, vx, vy (``rsd.geometry.BoxField``); ``agent_cls`` (B, K) (-1 pad); ``agent_ids``;
  ``agent_mask``, ``agent_in_grid`` (B, K) bool; ``agent_future`` (B, K, T, 3) +
  ``agent_future_valid``; ``target_maps`` (B, 2, H, W) = drivable area, lane boundaries.
* risk targets (RSD variant): ``risk_map`` (B, 1, H, W) in [0, 1]; ``agent_risk`` (B, K);
  ``agent_rank`` (B, K) (1 = most risky, 0 = unknown); ``agent_risk_valid`` (B, K);
  ``risk_valid`` (B,) bool; ``scene_risk`` (B,).

Model outputs (dict of tensors; keys a model does not produce are absent):

* planning: ``plan_traj`` (B, M, T, 2) waypoints (x, y) in the ego frame for M modes;
  ``plan_scale`` (B, M, T, 2) > 0 Laplace scales (m); ``plan_logits`` (B, M); ``plan``
  (B, T, 2) the most likely mode's waypoints.
* detection (centre heatmap on the feature grid, ``s = model.feature_stride`` cells of the
  BEV grid per feature cell, Hf = H / s, Wf = W / s): ``det_heatmap`` (B, n_cls, Hf, Wf)
  logits; ``det_offset`` (B, 2, Hf, Wf) sub-cell centre offset (row, col); ``det_size``
  (B, 3, Hf, Wf) log l, w, h; ``det_yaw`` (B, 2, Hf, Wf) sin, cos; ``det_vel`` (B, 2, Hf, Wf)
  vx, vy m/s. Absent for models without detection (CNNPlanner).
* map (auxiliary): ``map_logits`` (B, 2, H, W) drivable / boundary logits
  (``target_maps`` channels).
* risk (RiskHead attached): ``risk_logits`` (B, 1, H, W) and ``risk_map`` (sigmoid) on the
  full BEV grid. The per-agent risk at the ground-truth agents is read out on the loss side
  (``rsd.losses.risk.agent_risk_readout``), since the model never sees the agents' boxes.

Detection target conventions (encoded by ``rsd.losses.detection_targets``, decoded by
``rsd.models.detection.decode_detections``; one agent = one row of ``agent_boxes`` with
``agent_mask & agent_in_grid``):

* ``p = grid.world_to_pixel(xy) / s`` continuous feature-grid ``(row, col)``; the centre cell
  is ``(i, j) = floor(p)``; ``det_offset`` target at ``(i, j)`` = ``p - (i, j)`` in [0, 1),
  **row first** (row grows backwards along -x, col grows to the right along -y). Decoding:
  ``xy = grid.pixel_to_world(((i, j) + offset) * s)``.
* ``det_size`` = ``log(l, w, h)`` (m); ``det_yaw`` = ``(sin yaw, cos yaw)``, decoded with
  ``atan2``; ``det_vel`` = ``(vx, vy)`` m/s in the ego frame. Regression targets are read at the
  centre cell only.
* ``det_heatmap`` target: per class (``agent_cls``), 1 at the centre cell, a Gaussian splat
  around it (CenterNet-style), max where agents overlap. Decoding takes 3x3 local maxima of
  ``sigmoid(det_heatmap)`` (max-pool NMS). Heads start with a heatmap bias of logit(0.1).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

Features = dict[str, Any]
"""``bev``, ``command``, ``ego_status`` (see the module doc)."""
Outputs = dict[str, Tensor]


@runtime_checkable
class BEVBackbone(Protocol):
    """Any driving model that hands over its BEV feature maps before its planner reads them."""

    bev_channels: int
    """C of the features returned by :meth:`encode`."""
    feature_stride: int
    """BEV grid cells per feature cell: features are (H / stride, W / stride)."""

    def encode(self, features: Features) -> Tensor:
        """(B, C, Hf, Wf) BEV feature maps."""
        ...

    def decode(self, feats: Tensor, features: Features) -> Outputs:
        """All heads (detection, planning...) reading ``feats``; see the module doc."""
        ...

    def forward(self, features: Features) -> Outputs:
        """``decode(encode(features), features)``."""
        ...
