"""Training losses: pure functions returning dicts of named terms (no state).

* :mod:`rsd.losses.perception`: CenterNet-style detection targets and losses, the BEV map BCE;
* :mod:`rsd.losses.planning`: winner-takes-all imitation, the Laplace-mixture NLL, VAD-style
  collision and boundary constraints;
* :mod:`rsd.losses.risk`: risk distillation and the trajectory likelihood constraint.
"""
