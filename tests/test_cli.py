"""The ``rsd`` front: ``KEY=VALUE`` overrides anywhere on the line, and a clear word where a
command takes them only after ``--set`` or not at all."""

from __future__ import annotations

import pytest
import yaml

from rsd.cli import main, parse_args


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "lr=0.1", "--data", "D", "--out", "R", "seed=2"],
        ["train", "--data", "D", "lr=0.1", "--out", "R", "seed=2"],
        ["train", "--data", "D", "--out", "R", "lr=0.1", "--resume", "seed=2"],
    ],
)
def test_train_takes_overrides_anywhere_in_order(argv):
    args = parse_args(argv)
    assert args.overrides == ["lr=0.1", "seed=2"] and args.resume == ("--resume" in argv)
    assert (str(args.data), str(args.out)) == ("D", "R")


def test_generate_and_experiment_take_overrides_after_options():
    args = parse_args(["generate", "OUT", "--seed", "3", "seed=2", "--workers", "2", "x=1"])
    assert args.out_dir == "OUT" and args.overrides == ["seed=2", "x=1"] and args.workers == 2
    args = parse_args(["experiment", "quick", "--out", "x", "seeds=[0]", "--dry-run", "a=1"])
    assert args.config == "quick" and args.overrides == ["seeds=[0]", "a=1"] and args.dry_run


def test_experiment_override_after_an_option_reaches_the_config(tmp_path, capsys):
    argv = ["experiment", "quick", "--out", str(tmp_path), "--print-config", "seeds=[7,8]"]
    assert main(argv) == 0
    assert yaml.safe_load(capsys.readouterr().out)["seeds"] == [7, 8]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rigs", "dense360", "sensors.0.beams=90"], "KEY=VALUE overrides: give each after --set"),
        (["eval", "RUN", "--data", "D", "--out", "x.json", "lr=1"], "it takes none"),
        (["train", "--data", "D", "--out", "R", "--bogus", "lr=1"], "unrecognized arguments"),
    ],
)
def test_where_overrides_are_not_taken_the_error_says_so(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"rsd {argv[0]}: error: unrecognized arguments" in err and message in err


@pytest.mark.parametrize("command", ["generate", "annotate", "experiment"])
def test_help_says_that_module_attr_names_run_code(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "MODULE:ATTR" in text and "runs that code" in text
