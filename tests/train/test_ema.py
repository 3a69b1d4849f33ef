"""The EMA of G and E (App. A): BigGAN's scheme, a plain copy until ``optim.ema_start``, then the fixed decay;
its configuration, per-scale values and the handling of runs saved with the older warm-up."""

import pytest
import torch
import yaml
from torch import nn

from bigbigan.config import ConfigError, from_dict, to_dict
from bigbigan.presets import resolve
from bigbigan.train.ema import EMA


class OneParam(nn.Module):
    """One weight and one buffer, to follow the EMA by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.register_buffer("b", torch.zeros(1))


def _run(ema: EMA, live: OneParam, values: list[float]) -> list[float]:
    out = []
    for t, v in enumerate(values, 1):
        with torch.no_grad():
            live.w.fill_(v)
            live.b.fill_(10.0 * t)
        ema.update(live)
        out.append(ema.model.w.item())
        assert ema.model.b.item() == 10.0 * t  # buffers are copied, not averaged
    return out


def test_ema_copies_until_the_start_step_then_applies_the_fixed_decay(device):
    live = OneParam().to(device)
    ema = EMA(live, decay=0.75, start=2)
    # updates 1, 2: copies (1, 2); 3: 0.75 * 2 + 0.25 * 3 = 2.25; 4: 0.75 * 2.25 + 0.25 * 4 = 2.6875;
    # 5: 0.75 * 2.6875 + 0.25 * 5 = 3.265625 (all exact in binary floating point)
    assert _run(ema, live, [1.0, 2.0, 3.0, 4.0, 5.0]) == [1.0, 2.0, 2.25, 2.6875, 3.265625]
    assert ema.num_updates == 5 and ema.model.w.device == device


def test_ema_with_start_zero_averages_from_the_initial_weights(device):
    live = OneParam().to(device)  # w = 0 at construction: the EMA starts as that copy
    ema = EMA(live, decay=0.75, start=0)
    # 1: 0.75 * 0 + 0.25 * 4 = 1; 2: 0.75 * 1 + 0.25 * 8 = 2.75
    assert _run(ema, live, [4.0, 8.0]) == [1.0, 2.75]


def test_ema_resumes_from_its_state_dict(device):
    live = OneParam().to(device)
    a = EMA(live, decay=0.75, start=2)
    _run(a, live, [1.0, 2.0, 3.0])
    b = EMA(OneParam().to(device), decay=0.75, start=2)
    b.load_state_dict(a.state_dict())
    assert _run(b, live, [4.0]) == [2.6875]  # continues with the decay, not with a copy


@pytest.mark.parametrize(("field", "value", "message"), [
    ("optim.ema_start", -1, "optim.ema_start=-1 is not valid"),
    ("optim.ema_decay", 1.0, "optim.ema_decay=1.0 is not valid"),
    ("optim.ema_decay", -0.1, "optim.ema_decay=-0.1 is not valid"),
])
def test_ema_settings_are_validated(field, value, message):
    with pytest.raises(ConfigError, match=message):
        resolve("tiny", "base", [f"{field}={value}"])


def test_scale_horizons_are_reached_within_a_run():
    """The start copy's weight decay ** (steps - start) is small at the end of a default run, and the averaging
    horizon 1 / (1 - decay) is a fraction of the run (not the whole run, not a few iterations)."""
    for scale in ("imagenet128", "small32"):
        o, steps = resolve(scale).optim, resolve(scale).train.steps
        assert o.ema_decay ** (steps - o.ema_start) < 0.05, scale
        assert steps / 100 <= 1 / (1 - o.ema_decay) <= steps / 5, scale
    assert resolve("imagenet128").optim.ema_decay == 0.9999  # the paper's decay (App. A)
    assert resolve("imagenet128").optim.ema_start == 20000  # BigGAN's ImageNet 128 launch script


def _legacy(cfg_dict: dict) -> dict:
    """A configuration as runs before BigGAN's EMA scheme saved it."""
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg_dict.items()}
    d["optim"].pop("ema_start")
    d["optim"]["ema_warmup"] = 100
    d.pop("eval")
    return d


def test_a_legacy_ema_warmup_config_is_refused_for_training_in_one_line():
    with pytest.raises(ConfigError, match="optim.ema_warmup.*can be evaluated .* but not resumed"):
        from_dict(_legacy(to_dict(resolve("tiny"))))
    cfg = from_dict(_legacy(to_dict(resolve("tiny"))), drop_legacy=True)
    assert cfg.model.z_dim == resolve("tiny").model.z_dim


def test_a_legacy_run_evaluates_but_does_not_resume(tmp_path, capsys):
    from bigbigan.checkpoint import load_latest
    from bigbigan.cli import main
    from bigbigan.evaluation.features import load_models
    from bigbigan.files import atomic_save

    run = tmp_path / "run"
    assert main(["train", "--scale", "tiny", "--out", str(run), "--steps", "1", "--no-progress",
                 "--set", "data.train_val_size=100"]) == 0
    state = load_latest(run)
    state["config"] = _legacy(state["config"])
    atomic_save(state, run / "checkpoints" / "ckpt-00000001.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(state["config"], sort_keys=False))
    loaded = load_models(run, standing_stats_batches=0)
    assert torch.equal(loaded.G.linear.weight, state["G_ema"]["model"]["linear.weight"])
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--steps", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bigbigan: error:") and "ema_warmup" in err and len(err.splitlines()) == 1
