"""Options derived from config dataclasses: ``--help`` defaults and choices, TOML precedence, old spellings.

No training runs here: each command's run function is replaced by one that records the config it gets.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hema.train.adapt.config import AdaptConfig
from hema.train.cli import app
from hema.train.dino.config import DINOConfig
from hema.train.run.config_files import config_from_dict, config_to_dict
from hema.train.run.options import config_command
from hema.train.run.settings import RunSettings, setting
from hema.train.supervised.config import SupervisedConfig

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


@dataclass(frozen=True, kw_only=True)
class TinyConfig(RunSettings):
    """A config that exists only in this test."""

    out: str = setting(short="-o", help="Run folder.")
    colour: str = setting("red", choices=("red", "blue"), help="A colour.")
    sizes: tuple[int, ...] = setting((1, 2), help="Some sizes.")
    verbose: bool = setting(False, help="Talk a lot.")
    rate: float | None = setting(None, min=0, help="An optional rate.")


def _flat(text: str) -> str:
    """Help text without rich's box drawing and line wrapping."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


def _capturing(config_cls: type) -> tuple[typer.Typer, list]:
    """A one-command app for ``config_cls`` whose run function only records the config."""
    received: list = []

    def run(config) -> None:
        """Record the config."""
        received.append(config)

    single = typer.Typer()
    single.command()(config_command(config_cls, run, name="probe"))
    return single, received


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("ssl", ["--cells", "--split", "all|train|test", "[default: 0.0005]", "[default: 64]", "--scratch"]),
        ("supervised", ["--data", "-d", "--split", "onecycle|cosine", "loss|sampler|none", "[default: 0.001]"]),
        ("adapt", ["--data", "--cells", "--cells-split", "entropy|snd", "[default: 0.004]", "[default: 2]"]),
    ],
)
def test_help_lists_real_defaults_and_choices(command: str, expected: list[str]) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    for needle in [*expected, "frozen|train|sync", "[default: frozen]", "--batch-size", "-b", "-o", "--config"]:
        assert needle in text, f"{needle!r} missing from `hema-train {command} --help`"
    for old in ("--source", "--target", "--data-split", "--source-split", "--target-split"):
        assert f"{old} " not in text  # old spellings are hidden


def test_command_line_overrides_toml_and_toml_overrides_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('data = "cells"\nout = "runs/x"\nlr = 0.5\nepochs = 3\nschedule = "cosine"\n', encoding="utf-8")
    single, received = _capturing(SupervisedConfig)
    result = CliRunner().invoke(single, ["--config", str(toml), "--lr", "0.01", "--epochs", "15"])
    assert result.exit_code == 0, result.output
    [config] = received
    assert config.lr == 0.01  # given: beats the file
    assert config.epochs == 15  # given with the default's value: still beats the file
    assert config.schedule == "cosine" and config.data == "cells"  # from the file: beats the defaults
    assert config.batch_size == 32 and config.split == "train"  # neither: the defaults


def test_required_options_may_come_from_the_toml_file_or_exit_2(tmp_path: Path) -> None:
    single, received = _capturing(DINOConfig)
    missing = CliRunner().invoke(single, ["--out", str(tmp_path)])
    assert missing.exit_code == 2 and "--cells" in missing.output and not received
    toml = tmp_path / "run.toml"
    toml.write_text('cells = ["a", "b"]\n', encoding="utf-8")
    result = CliRunner().invoke(single, ["--config", str(toml), "-o", str(tmp_path), "--cells", "c", "--cells", "d"])
    assert result.exit_code == 0, result.output
    assert received[0].cells == ("c", "d") and received[0].out == str(tmp_path)


def test_bad_choice_exits_2_on_the_command_line_and_in_the_toml_file(tmp_path: Path) -> None:
    single, received = _capturing(SupervisedConfig)
    assert CliRunner().invoke(single, ["-d", "x", "-o", "y", "--schedule", "linear"]).exit_code == 2
    assert CliRunner().invoke(single, ["-d", "x", "-o", "y", "--split", "validation"]).exit_code == 2
    toml = tmp_path / "run.toml"
    toml.write_text('balance = "oversample"\n', encoding="utf-8")
    result = CliRunner().invoke(single, ["-d", "x", "-o", "y", "--config", str(toml)])
    assert result.exit_code == 2 and "oversample" in result.output and not received


@pytest.mark.parametrize(
    ("config_cls", "arguments", "expected", "notes"),
    [
        (AdaptConfig, ["--source", "a", "--target", "b", "--source-split", "all", "--target-split", "test"],
         {"data": "a", "cells": "b", "split": "all", "cells_split": "test"},
         ["--source is deprecated; use --data", "--target is deprecated; use --cells",
          "--source-split is deprecated; use --split", "--target-split is deprecated; use --cells-split"]),
        (SupervisedConfig, ["--data", "a", "--data-split", "test"], {"data": "a", "split": "test"},
         ["--data-split is deprecated; use --split"]),
        (DINOConfig, ["--data", "a", "--data", "b", "--data-split", "train"], {"cells": ("a", "b"), "split": "train"},
         ["--data is deprecated; use --cells", "--data-split is deprecated; use --split"]),
    ],
)  # fmt: skip
def test_old_spellings_still_work_and_print_a_note(
    config_cls: type, arguments: list[str], expected: dict, notes: list[str]
) -> None:
    single, received = _capturing(config_cls)
    result = CliRunner().invoke(single, [*arguments, "--out", "o"])
    assert result.exit_code == 0, result.output
    assert {key: getattr(received[0], key) for key in expected} == expected
    assert [line.removeprefix("note: ") for line in result.output.splitlines() if "deprecated" in line] == notes


def test_old_and_new_spelling_together_is_a_usage_error() -> None:
    single, received = _capturing(AdaptConfig)
    result = CliRunner().invoke(single, ["--data", "a", "--source", "b", "--cells", "c", "-o", "o"])
    assert result.exit_code == 2 and not received


def test_old_names_in_checkpoint_dicts_still_load() -> None:
    old_adapt = {"source": "pbc", "target": "bccd", "out": "o", "source_split": "all", "target_split": "test"}
    adapt = config_from_dict(AdaptConfig, old_adapt)
    assert (adapt.data, adapt.cells, adapt.split, adapt.cells_split) == ("pbc", "bccd", "all", "test")
    old_dino = {"data": ["pbc", "bccd"], "out": "o", "data_split": "train"}
    dino = config_from_dict(DINOConfig, old_dino)
    assert dino.cells == ("pbc", "bccd") and dino.split == "train"
    assert config_from_dict(DINOConfig, config_to_dict(dino)) == dino
    with pytest.raises(ValueError, match="old name"):
        config_from_dict(DINOConfig, {"data": ["a"], "cells": ["b"], "out": "o"})


def test_adapt_workers_default_is_on_the_field() -> None:
    assert AdaptConfig(data="a", cells="b", out="o").workers == 2
    assert SupervisedConfig(data="a", out="o").workers == 4


def test_a_new_field_becomes_an_option() -> None:
    single, received = _capturing(TinyConfig)
    text = _flat(CliRunner().invoke(single, ["--help"], env=WIDE).output)
    for needle in ("--colour", "red|blue", "[default: red]", "--sizes", "--verbose", "--no-verbose", "--rate"):
        assert needle in text
    arguments = ["-o", "x", "--colour", "blue", "--sizes", "3", "--sizes", "4", "--verbose", "--rate", "0.5"]
    assert CliRunner().invoke(single, arguments).exit_code == 0
    assert received[0] == TinyConfig(out="x", colour="blue", sizes=(3, 4), verbose=True, rate=0.5)
    assert CliRunner().invoke(single, ["-o", "x", "--rate", "-1"]).exit_code == 2  # min=0
    assert CliRunner().invoke(single, ["-o", "x", "--colour", "green"]).exit_code == 2


def test_help_of_the_training_commands_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from hema.train.cli import app\n"
        "for command in ('ssl', 'supervised', 'adapt'):\n"
        "    assert CliRunner().invoke(app, [command, '--help']).exit_code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert finished.stdout.strip() == "False"
