"""Process-level settings: the contention and slow-bf16 warnings."""

from bigbigan.runtime import bf16_hint, contention_hint


def test_contention_hint_only_when_busy_and_multithreaded():
    assert contention_hint(load=0.3, cores=2, threads=2) is None  # idle machine
    assert contention_hint(load=7.0, cores=2, threads=1) is None  # one thread: nothing to stall
    assert contention_hint(load=1.9, cores=2, threads=2) is None
    hint = contention_hint(load=7.2, cores=2, threads=2)
    assert hint.startswith("bigbigan: warning: load average 7.2 on 2 cores")
    assert "OMP_NUM_THREADS=1" in hint and "\n" not in hint


def test_bf16_hint_only_on_a_cpu_without_bf16_instructions():
    assert bf16_hint("training", "cpu", native=True, fp32_option="--precision fp32") is None
    assert bf16_hint("training", "cuda", native=False, fp32_option="--precision fp32") is None  # GPUs: not ours
    hint = bf16_hint("training", "cpu", native=False, fp32_option="--precision fp32")
    assert hint.startswith("bigbigan: warning: training in bf16 on a CPU without bf16 instructions")
    assert hint.endswith("use --precision fp32") and "\n" not in hint


def test_bf16_warning_from_the_trainer_on_such_a_cpu(monkeypatch, capsys, tmp_path):
    """The trainer warns on a CPU without bf16 instructions, and says nothing where it has them (the Inception's
    warning: test_eval_inception)."""
    from bigbigan import runtime
    from bigbigan.data import build_stream
    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer

    def trainer(precision, where):
        cfg = resolve("tiny", "base", ["data.train_val_size=100", f"train.precision={precision}"])
        Trainer(cfg, tmp_path / where, stream=build_stream(cfg), progress=False)
        return capsys.readouterr().err

    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: False)
    assert "training in bf16 on a CPU without bf16 instructions" in trainer("bf16", "a")
    assert trainer("fp32", "b") == ""
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: True)
    assert trainer("bf16", "c") == ""
