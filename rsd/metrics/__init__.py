"""Evaluation metrics: pure functions on arrays with validity masks.

Modules: :mod:`~rsd.metrics.planning` (L2 in the VAD and UniAD conventions, ADE/FDE, plan
collision rate: exact boxes and VAD's grid, :mod:`~rsd.metrics.vad_grid`),
:mod:`~rsd.metrics.detection` (nuScenes AP, TP errors, NDS as nuscenes-devkit 1.2.0 computes
them), :mod:`~rsd.metrics.driving` (Bench2Drive's closed-loop metrics),
:mod:`~rsd.metrics.risk` (student/teacher risk agreement, near-miss AUROC). Import from the
submodules; this file stays free of imports so that each module loads on its own.
"""
