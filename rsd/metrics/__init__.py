"""Evaluation metrics: pure functions on arrays with validity masks.

Modules: :mod:`~rsd.metrics.planning` (L2 in the VAD and UniAD conventions, ADE/FDE, VAD
collision rate), :mod:`~rsd.metrics.detection` (nuScenes-style AP, TP errors, NDS),
:mod:`~rsd.metrics.risk` (student/teacher risk agreement, near-miss AUROC). Import from the
submodules; this file stays free of imports so that each module loads on its own.
"""
