"""Scenario suite on highway-env, the privileged expert, the recorder and closed-loop runs.

Public entry points: :func:`rsd.sim.spec.load_scenario`, :func:`rsd.sim.spec.builtin_scenarios`,
:func:`rsd.sim.episode.make_episode` and :class:`rsd.sim.expert.PrivilegedExpert`.
"""
