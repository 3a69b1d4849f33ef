"""Configuration: variants change exactly their fields, overrides are typed, bad input fails in one line."""

import dataclasses

import pytest

from bigbigan.cli import main
from bigbigan.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_yaml,
    option_overrides,
    save_yaml,
    to_dict,
)
from bigbigan.presets import SCALES, TABLE1, VARIANTS, Scaled, resolve


def flat(cfg):
    out = {}

    def walk(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                out[f"{prefix}{k}"] = v

    walk("", to_dict(cfg))
    return out


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_changes_exactly_the_fields_it_names(scale, variant):
    base = flat(resolve(scale, "base"))
    got = flat(resolve(scale, variant))
    changed = {k for k in base if base[k] != got[k] and k != "variant"}
    delta = VARIANTS[variant][1]
    assert changed <= set(delta)
    for path, value in delta.items():
        expected = value(base[path]) if isinstance(value, Scaled) else value
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert got[path] == expected


def test_table1_has_every_row_of_the_paper():
    assert len(TABLE1) == 19
    assert resolve("imagenet128", "high-res-e-256").model.e_resolution == 256
    assert resolve("imagenet128", "low-res-g-64").model.resolution == 64
    assert resolve("small32", "high-res-e-256").model.e_resolution == 64
    assert resolve("imagenet128", "revnet-x4-e-lr").optim.e_lr_mult == 10.0


def test_uniform_pz_saves_the_deterministic_encoder_it_runs():
    # Table 1's Uniform P_z row has no "Var." tick: E predicts z = tanh(z_hat); the saved config must say so.
    for scale in SCALES:
        assert resolve(scale, "uniform-pz").model.encoder.stochastic is False


def test_uniform_prior_with_a_stochastic_encoder_is_refused(capsys):
    with pytest.raises(ConfigError, match="model.encoder.stochastic=True contradicts model.prior='uniform'"):
        resolve("tiny", "base", ["model.prior=uniform"])
    assert main(["presets", "--params", "tiny", "base", "--set", "model.prior=uniform"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set model.encoder.stochastic=false" in err[0]
    assert resolve("tiny", "base", ["model.prior=uniform", "model.encoder.stochastic=false"]).model.prior == "uniform"


def test_configs_saved_before_the_fix_load_as_what_ran():
    # Runs saved before uniform-pz named stochastic=False recorded True, but E ran deterministic.
    old = to_dict(resolve("tiny", "uniform-pz"))
    old["model"]["encoder"]["stochastic"] = True
    assert from_dict(old).model.encoder.stochastic is False


def test_hinge_sum_is_footnote_1_and_not_a_table1_row(capsys):
    assert resolve("tiny", "hinge-sum").objective.d_loss == "hinge_sum"
    assert "hinge-sum" not in TABLE1
    assert main(["presets"]) == 0
    assert "hinge-sum" in capsys.readouterr().out


def test_overrides_are_typed():
    cfg = apply_overrides(Config(), ["optim.lr_g=2e-4", "model.encoder.blocks=3,4,23,3", "train.minutes=none",
                                     "model.encoder.stochastic=false", "objective.terms=xz"])
    assert cfg.optim.lr_g == 2e-4 and cfg.model.encoder.blocks == (3, 4, 23, 3)
    assert cfg.train.minutes is None and cfg.model.encoder.stochastic is False
    assert cfg.objective.terms == ("xz",)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lr_gg=1"], "unknown field 'optim.lr_gg'"),
        (["model.resolution=48"], "model.resolution=48 is not valid; choose one of"),
        (["optim.batch_size=abc"], "not a valid int"),
        (["model.encoder.arch=none"], "needs an encoder"),
        (["objective.terms=x,q"], "objective.terms"),
        (["model"], "key=value"),
    ],
)
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve("tiny", "base", overrides)


def test_unknown_scale_and_variant_list_choices():
    with pytest.raises(ConfigError, match="small32"):
        resolve("huge", "base")
    with pytest.raises(ConfigError, match="no-unaries"):
        resolve("tiny", "bigan")


def test_yaml_round_trip(tmp_path):
    cfg = resolve("small32", "resnet-e-lr", ["train.minutes=3"])
    save_yaml(cfg, tmp_path / "c.yaml")
    assert dataclasses.asdict(load_yaml(tmp_path / "c.yaml")) == dataclasses.asdict(cfg)


def test_yaml_with_unknown_field_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("optim:\n  lr_q: 1\n")
    with pytest.raises(ConfigError, match="lr_q"):
        load_yaml(tmp_path / "c.yaml")


def test_cli_prints_one_line_for_user_errors(capsys):
    assert main(["presets", "--params", "tiny", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown variant 'nope'" in err[0]


def test_cli_presets_lists_every_variant(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(v in out for v in VARIANTS) and all(s in out for s in SCALES)
    assert main(["presets", "--params", "imagenet128", "base"]) == 0
    assert "G            70.273 M" in capsys.readouterr().out  # ch 96, 128 px (BigGAN: 70.4M with 0.13M class embedding)


def test_option_overrides_follow_the_set_list_so_options_win():
    got = option_overrides(["train.seed=1", "optim.lr_g=1e-4"], data="digits", data_dir=None, steps=0,
                           minutes=None, precision="bf16", seed=7)
    assert got == ["train.seed=1", "optim.lr_g=1e-4", "data.source=digits", "train.steps=0",
                   "train.precision=bf16", "train.seed=7"]
    assert apply_overrides(Config(), got).train.seed == 7
    assert option_overrides([], data="") == []
