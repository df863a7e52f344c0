"""``rsd train``: exact resume after a stop or a signal, DDP on two CPU processes, NaN stops,
config errors, logs, and overfitting a handful of real samples."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from rsd.checkpoint import checkpoint_path, load_checkpoint
from rsd.cli import main
from rsd.config import ConfigError, load_config
from rsd.data.store import FrameStore
from rsd.pipeline.train import TrainingDiverged, train
from rsd.train_config import TrainConfig, lr_at
from tests import train_fakes
from tests.train_fakes import SMALL_GRID, TINY, tiny_dataset

BASE = [*TINY, *SMALL_GRID, "batch_size=2", "num_workers=0", "warmup_steps=2", "log_every=1"]


# One intra-op thread, module-wide: a second spinning OpenMP thread made these tiny models up
# to 15x slower on a shared machine, and the reference and resumed runs must share the
# thread count (float reductions differ between thread counts).
pytestmark = pytest.mark.usefixtures("one_thread")


def cfg_of(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*BASE, *overrides])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("train") / "ds")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(checkpoint_path(run)).model


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted 2-epoch run."""
    run = tmp_path_factory.mktemp("train") / "ref"
    result = train(cfg_of("epochs=2"), data, run, progress=False)
    assert result.status == "done" and result.step == 6  # 6 train frames / 2 per batch * 2
    return run


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    oa, ob = load_checkpoint(checkpoint_path(a)), load_checkpoint(checkpoint_path(b))
    for pid, state in oa.optimizer["state"].items():
        for name, t in state.items():
            assert torch.equal(t, ob.optimizer["state"][pid][name]), (pid, name)


def test_resume_after_stop_reproduces_the_uninterrupted_run(data, reference, tmp_path):
    run = tmp_path / "run"
    first = train(cfg_of("epochs=2", "stop_after_steps=2"), data, run, progress=False)
    assert (first.status, first.step) == ("stopped", 2)  # mid-epoch: 3 steps per epoch
    assert load_checkpoint(checkpoint_path(run)).step == 2
    # without --resume the run directory is not overwritten
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg_of("epochs=2"), data, run, progress=False)
    # a changed hyperparameter is refused, naming it
    with pytest.raises(ConfigError, match=r"lr \(checkpoint 0.0003, now 0.1\)"):
        train(cfg_of("epochs=2", "lr=0.1"), data, run, resume=True, progress=False)
    rest = train(cfg_of("epochs=2"), data, run, resume=True, progress=False)
    assert (rest.status, rest.step) == ("done", 6)
    assert_same_run(reference, run)
    # the log continues without duplicate steps, every term and the lr in every line
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [ln["step"] for ln in lines if "lr" in ln]
    assert steps == [1, 2, 3, 4, 5, 6]
    ref = [json.loads(ln) for ln in (reference / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(
        [ln for ln in ref if "lr" in ln], [ln for ln in lines if "lr" in ln], strict=True
    ):
        assert a["loss"] == b["loss"] and a["lr"] == b["lr"]
        assert {"loss", "grad_norm", "lr"} < set(a)


def test_sigint_saves_at_the_next_step_and_resume_is_exact(data, reference, tmp_path):
    from rsd.losses import total_loss

    calls = []

    def interrupting(*args, **kw):
        calls.append(1)
        if len(calls) == 4:  # during step 4 (the first of epoch 2)
            os.kill(os.getpid(), signal.SIGINT)
        return total_loss(*args, **kw)

    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # default, or SIG_IGN in a background job
    first = train(cfg_of("epochs=2"), data, run, progress=False, loss_fn=interrupting)
    assert (first.status, first.step) == ("interrupted", 4)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    train(cfg_of("epochs=2"), data, run, resume=True, progress=False)
    assert_same_run(reference, run)


class Killed(BaseException):
    """Stands for ``kill -9``: nothing in the training loop catches it, nothing is saved."""


def test_checkpoint_every_n_steps_then_a_kill_mid_epoch_resumes_exactly(data, reference, tmp_path):
    from rsd.losses import total_loss

    calls = []

    def killed_in_step_6(*args, **kw):
        calls.append(1)
        if len(calls) == 6:  # the last step of epoch 2: its epoch-end save never happens
            raise Killed
        return total_loss(*args, **kw)

    run = tmp_path / "run"
    cfg = cfg_of("epochs=2", "checkpoint_every=2")
    with pytest.raises(Killed):
        train(cfg, data, run, progress=False, loss_fn=killed_in_step_6)
    ckpt = load_checkpoint(checkpoint_path(run))
    assert (ckpt.step, ckpt.meta["status"]) == (4, "step")  # mid-epoch: 3 steps per epoch
    # without checkpoint_every the same kill would have left the epoch-end save of step 3
    result = train(cfg_of("epochs=2"), data, run, resume=True, progress=False)
    assert (result.status, result.step) == ("done", 6)
    assert_same_run(reference, run)


def test_nan_stops_naming_step_and_term_and_keeps_the_last_checkpoint(data, tmp_path):
    from rsd.losses import total_loss

    calls = []

    def poisoned(*args, **kw):
        terms = total_loss(*args, **kw)
        calls.append(1)
        if len(calls) == 5:
            name = next(n for n in terms if n != "loss")
            terms[name] = terms[name] * float("nan")
            terms["loss"] = terms["loss"] + terms[name]
        return terms

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"step 5 \(epoch 2\).*'\w+' is nan") as e:
        train(cfg_of("epochs=2"), data, run, progress=False, loss_fn=poisoned)
    assert str(checkpoint_path(run)) in str(e.value)
    ckpt = load_checkpoint(checkpoint_path(run))
    assert ckpt.step == 3 and ckpt.meta["status"] == "epoch"
    assert all(torch.isfinite(t).all() for t in ckpt.model.values())


def test_config_errors_name_the_key(data, tmp_path, capsys):
    for override, name in [
        ("lrr=1", "lrr"),
        ("lr=-1", "lr"),
        ("batch_size=many", "batch_size"),
        ("variant=big", "variant"),
        ("model.nope=1", "model.nope"),
        ("loss.nope=1", "loss.nope"),
    ]:
        with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
            cfg_of(override)
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "epochs=zero"])
    assert rc == 2 and "epochs" in capsys.readouterr().err
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "rig=nowhere"])
    assert rc == 2 and "nowhere" in capsys.readouterr().err


def test_episodes_below_keeps_the_first_episodes_of_the_train_split(tmp_path):
    from rsd.data.dataset import seed_of, split_of
    from rsd.pipeline.train_data import open_training_data

    ds = tiny_dataset(tmp_path / "ds", episodes=3, annotate=False)
    ids = FrameStore(ds).frame_ids
    said: list[str] = []

    def frames(*overrides: str) -> list[str]:
        dataset, identity, _ = open_training_data(
            cfg_of("variant=baseline", *overrides), ds, said.append
        )
        kept = [ids[i] for i in dataset.indices]
        assert identity["train_frames"] == len(kept)
        return kept

    every = frames()
    assert {seed_of(f) for f in every} == {0, 1, 2} and all(split_of(f) == "train" for f in every)
    two = frames("episodes_below=2")
    assert two == [f for f in every if seed_of(f) < 2] and {seed_of(f) for f in two} == {0, 1}
    assert frames("episodes_below=99") == every
    assert frames("episodes_below=1", "max_samples=3") == [f for f in every if seed_of(f) == 0][:3]
    with pytest.raises(ConfigError, match="episodes_below"):
        cfg_of("episodes_below=0")


def test_rsd_variant_without_annotations_says_what_to_run(tmp_path, capsys):
    ds = tiny_dataset(tmp_path / "ds", episodes=1, annotate=False)
    args = ["train", "--data", str(ds), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*args, "--variant", "rsd", *BASE]) == 2
    assert f"rsd annotate {ds}" in capsys.readouterr().err
    assert main([*args, "--variant", "baseline", *BASE, "epochs=2", "stop_after_steps=1"]) == 0
    cfg = load_config(TrainConfig, tmp_path / "r" / "config.yaml")
    assert cfg.variant == "baseline" and cfg.task.risk_head is False and cfg.stop_after_steps == 1
    assert list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
    # --resume takes the run's config.yaml, without the spent stop, and finishes the run
    assert main([*args, "--resume"]) == 0
    assert load_checkpoint(checkpoint_path(tmp_path / "r")).step == 2


def test_lr_warms_up_linearly_then_decays_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    # 13 updates: 0-3 warm up, 4-12 the cosine (8 intervals)
    assert [lr_at(cfg, s, 13) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(cfg, 4, 13) == 1.0  # the cosine starts at the peak...
    assert math.isclose(lr_at(cfg, 8, 13), 0.55)  # ...is half way down half way...
    assert math.isclose(lr_at(cfg, 12, 13), 0.1)  # ...and ends on the floor


@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_weights(data, tmp_path):
    run = tmp_path / "ddp"
    overrides = [*BASE, "epochs=2"]
    mp.spawn(
        train_fakes.ddp_worker,
        args=(2, str(tmp_path / "store"), str(data), str(run), overrides),
        nprocs=2,
        join=True,
    )
    w0, w1 = load_file(run / "rank0.safetensors"), load_file(run / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    ckpt = load_checkpoint(checkpoint_path(run))
    assert ckpt.meta["world_size"] == 2 and len(ckpt.meta["rng"]) == 2
    assert ckpt.step == 4  # 6 frames -> 3 per rank -> 2 steps of 2 per epoch
    assert all(torch.equal(ckpt.model[k], w0[k]) for k in w0)


@pytest.mark.slow
def test_backbone_overfits_a_handful_of_real_samples(tmp_path):
    """The default (VAD-style) model with the RiskHead fits 8 recorded highway-env keyframes
    with privileged-teacher targets: the total loss falls by >= 90 % in 60 steps, and so do
    planning and detection on their own."""
    from rsd.data.store import FrameStore
    from rsd.pipeline.annotate import annotate
    from rsd.pipeline.generate import GenerateConfig, generate
    from rsd.teacher.cache import CACHE_NAME, AnnotationCache
    from rsd.teacher.factory import make_teacher

    ds = tmp_path / "ds"
    generate(GenerateConfig(scenarios=("highway",), episodes_per_scenario=1), ds, progress=False)
    with AnnotationCache(ds / CACHE_NAME) as cache:
        annotate(FrameStore(ds), make_teacher("privileged"), cache, progress=False)
    overrides = [*SMALL_GRID, "max_samples=8", "batch_size=8", "epochs=60", "lr=0.003"]
    more = ["warmup_steps=5", "num_workers=0", "log_every=1", "augment.prob=0"]  # memorise
    cfg = load_config(TrainConfig, None, [*overrides, *more])
    train(cfg, ds, tmp_path / "run", progress=False)
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [ln for ln in lines if "lr" in ln]
    first, last = steps[0], steps[-1]
    assert last["step"] == 60
    for term in ("loss", "plan_l1", "det_heatmap", "det_size"):
        assert last[term] <= 0.1 * first[term], (term, first[term], last[term])


def test_train_help_names_every_task():
    import re

    from rsd.commands.train import TASK_HELP
    from rsd.tasks import TASKS

    assert set(re.findall(r"[a-z_]+", TASK_HELP)) - {"or"} == set(TASKS)


def test_teacher_forcing_trains_with_the_teacher_maps_fed_to_the_planner(data, tmp_path):
    """``model.risk_head.teacher_forcing=1``: every training sample's planner reads the
    teacher's map, which the model refuses to run without (KeyError), so a finished run shows
    the task's dataset supplies it; the model keeps the head's map at evaluation (no oracle)."""
    from rsd.tasks import task_named
    from rsd.teacher.risk_map import ORACLE_FEATURE

    cfg = cfg_of("variant=rsd", "model.risk_head.teacher_forcing=1.0", "epochs=1")
    assert train(cfg, data, tmp_path / "tf", progress=False).status == "done"
    model = task_named("rsd").build_model(cfg)
    assert model.forcing_key == ORACLE_FEATURE and model.oracle_key is None
    assert task_named("rsd").build_model(cfg_of("variant=rsd")).forcing_key is None


def test_probe_trains_the_head_on_a_frozen_baseline(data, tmp_path):
    """``probe_of``: the baseline's weights start the run and come out bit for bit (frozen,
    BatchNorm statistics included), while the RiskHead moves from its initialisation."""
    base = tmp_path / "base"
    assert (
        train(cfg_of("variant=baseline", "epochs=1"), data, base, progress=False).status == "done"
    )
    cfg = cfg_of("variant=rsd", "epochs=1", f"probe_of={base}")
    assert train(cfg, data, tmp_path / "probe", progress=False).status == "done"
    before, after = weights(base), weights(tmp_path / "probe")
    for k, v in before.items():
        assert torch.equal(after[f"model.{k}"], v), k
    torch.manual_seed(cfg.seed)
    init = cfg.task.build_model(cfg).state_dict()
    head = [k for k in after if k.startswith("head.")]
    assert head and any(not torch.equal(after[k], init[k]) for k in head)
    with pytest.raises(ConfigError, match="probe_of"):
        cfg_of("variant=baseline", f"probe_of={base}")
    with pytest.raises(ConfigError, match="probe_of"):  # another backbone's weights
        train(cfg_of("variant=rsd", "model.backbone.channels=12", f"probe_of={base}"), data,
              tmp_path / "bad", progress=False)  # fmt: skip


def test_train_run_keeps_a_finished_run_whatever_its_config(data, reference, tmp_path):
    """What a pipeline stage does with a finished run in its place (a DAgger student copied in,
    trained by older code): keep it, rather than resume it under today's config and refuse."""
    import shutil

    from rsd.pipeline.runs import train_run

    run = tmp_path / "copied"
    shutil.copytree(reference, run)
    said: list[str] = []
    train_run(cfg_of("epochs=3", "lr=0.01"), data, run, progress=False, say=said.append)
    assert said and "kept" in said[0]
    assert_same_run(reference, run)


def test_resume_takes_a_key_the_checkpoint_lacks_as_its_default():
    """A checkpoint written before an option existed lacks its key: resuming under the
    option's default (the old behaviour) is the same run; under another value it is not."""
    from rsd.config import to_dict
    from rsd.train_config import check_resumable

    cfg = cfg_of("variant=rsd")
    saved = to_dict(cfg)
    del saved["loss"]["distill_loss"]
    check_resumable(saved, cfg)  # no error: the default l1 is what the old code did
    with pytest.raises(ConfigError, match="distill_loss"):
        check_resumable(saved, cfg_of("variant=rsd", "loss.distill_loss=bce"))
    saved["loss"]["distill_loss"] = "bce"
    with pytest.raises(ConfigError, match="distill_loss"):
        check_resumable(saved, cfg)
