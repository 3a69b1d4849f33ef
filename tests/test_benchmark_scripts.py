"""Logic of the benchmark scripts that decides which figures get published (no training beyond single iterations)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path, steps, res):
    (tmp_path / "checkpoints").mkdir()
    for s in steps:
        (tmp_path / "checkpoints" / f"ckpt-{s:08d}.pt").write_bytes(b"")
    (tmp_path / "eval.json").write_text(json.dumps(res))
    return tmp_path / "eval.json"


def test_fashion_mnist_reuses_only_a_current_evaluation_with_the_same_settings(tmp_path):
    fm = _module("fashion_mnist")
    res = {"step": 20, "fid_samples": 2000, "inception_precision": "fp32", "fid": 23.4, "linear_avepool_top1": 0.87}
    path = _run(tmp_path, [10, 20], res)
    want = {"fid_samples": 2000, "inception_precision": "fp32"}
    assert fm.reusable(path, want, ["fid", "linear_avepool_top1"]) == res
    assert fm.reusable(path, {**want, "fid_samples": 10000}, ["fid"]) is None  # other settings
    assert fm.reusable(path, want, ["fid", "kid"]) is None  # a figure missing
    (tmp_path / "checkpoints" / f"ckpt-{30:08d}.pt").write_bytes(b"")
    assert fm.reusable(path, want, ["fid"]) is None  # a newer checkpoint: stale
    path.write_text(json.dumps({**res, "step": 30, "failed": "RuntimeError: boom"}))
    assert fm.reusable(path, want, ["fid"]) is None  # a failed evaluation
    assert fm.reusable(tmp_path / "absent.json", want, ["fid"]) is None
    path.write_text(json.dumps({**res, "step": 30}))  # written before probe_steps was recorded: the default then
    assert fm.reusable(path, {"probe_steps": 5000}, ["fid"]) is not None
    assert fm.reusable(path, {"probe_steps": 1000}, ["fid"]) is None


def test_fashion_mnist_mean_over_seeds_keeps_each_seed(tmp_path):
    fm = _module("fashion_mnist")
    seeds = [{"linear_top1": 0.8, "fid_10k": 14.0, "fid_samples": 2000}, {"linear_top1": 0.9, "fid_10k": 16.0,
                                                                          "fid_samples": 2000}]
    out = fm.mean_over_seeds(seeds)
    assert abs(out["linear_top1"] - 0.85) < 1e-12 and abs(out["fid_10k"] - 15.0) < 1e-12
    assert abs(out["std"]["fid_10k"] - 2 ** 0.5) < 1e-12  # sample std
    assert out["seeds"] == seeds and "kid" not in out  # only figures every seed has


def test_fashion_mnist_training_minutes_add_up_over_resumes_and_survive_a_finished_rerun(tmp_path):
    fm = _module("fashion_mnist")
    assert fm.training_minutes(tmp_path, {"step": 10, "iterations": 0, "seconds": 1.0}) is None  # unknown
    assert fm.training_minutes(tmp_path, {"step": 100, "iterations": 100, "seconds": 600.0}) == 10.0
    assert fm.training_minutes(tmp_path, {"step": 150, "iterations": 50, "seconds": 300.0}) == 15.0  # resumed
    assert fm.training_minutes(tmp_path, {"step": 150, "iterations": 0, "seconds": 2.0}) == 15.0  # finished: rerun
    assert fm.training_minutes(tmp_path, {"step": 160, "iterations": 0, "seconds": 2.0}) is None
    # A session killed outright (no train.json for it): the earlier sessions' minutes come from stats.jsonl.
    (tmp_path / "train.json").unlink()
    stats = [{"step": 50, "time/minutes": 4.0}, {"step": 100, "time/minutes": 8.0},  # session 1, killed after 100
             {"step": 150, "time/minutes": 5.0}]  # session 2, from the checkpoint at 100
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stats))
    assert fm.training_minutes(tmp_path, {"step": 200, "iterations": 100, "seconds": 600.0}) == 8.0 + 10.0


def test_table1_power_finds_finished_runs_in_seed_order_and_averages_each_measure(tmp_path):
    t1 = _module("table1_power")
    for variant, seed in (("base", 0), ("base", 10), ("base", 2), ("no-unaries", 0), ("no-unaries", 1)):
        (tmp_path / variant / f"seed{seed}").mkdir(parents=True)
        if (variant, seed) != ("no-unaries", 1):  # still training: no eval.json
            (tmp_path / variant / f"seed{seed}" / "eval.json").write_text("{}")
    found = t1.cells(tmp_path)
    assert [p.name for p in found["base"]] == ["seed0", "seed2", "seed10"]
    assert [p.name for p in found["no-unaries"]] == ["seed0"]
    runs = {"base": [{"linear_paper_avepool_train_val_top1": 0.80, "linear_paper_avepool_top1": 0.79, "fid": 90.0,
                      "cfd": 20.0, "ckid": 1.0, "step": 500},
                     {"linear_paper_avepool_train_val_top1": 0.82, "linear_paper_avepool_top1": 0.81, "fid": 94.0,
                      "cfd": 24.0, "ckid": 1.2, "step": 400}]}
    md, rows = t1.table(runs, "paper")
    row = rows["base"]
    assert row["seeds"] == 2
    assert row["linear_paper_avepool_train_val_top1"]["mean"] == 81.0  # in points
    assert abs(row["linear_paper_avepool_train_val_top1"]["std"] - 2 ** 0.5) < 1e-9
    assert row["cfd"]["per_seed"] == [20.0, 24.0] and row["fid"]["mean"] == 92.0
    assert "| base | 2 | 81.00 ± 1.41 | 80.00 ± 1.41 | 92.00 ± 2.83 | 22.00 ± 2.83 |" in md


def test_table1_power_folds_in_an_earlier_json_and_refuses_a_seed_twice(tmp_path):
    import pytest

    t1 = _module("table1_power")
    recs = [{"linear_paper_avepool_train_val_top1": 0.80 + i / 100, "linear_paper_avepool_top1": 0.79, "fid": 90.0 + i,
             "cfd": 20.0, "ckid": 1.0, "step": 500} for i in range(2)]
    _, rows = t1.table({"base": recs}, "paper")  # written before seed_ids existed: seeds 0 and 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"protocol": "paper", "samples": 5000, "rows": rows}))
    back = t1.earlier(old, "paper", 5000)["base"]
    assert [r["seed"] for r in back] == [0, 1] and back[1]["fid"] == 91.0
    assert back[1]["linear_paper_avepool_train_val_top1"] == pytest.approx(0.81)  # points back to a fraction
    results = {}
    for rec in back + [{**recs[0], "seed": 3}]:
        t1.add_seed(results, "base", rec, "here")
    _, rows = t1.table(results, "paper")
    assert rows["base"]["seeds"] == 3 and rows["base"]["seed_ids"] == [0, 1, 3]
    assert rows["base"]["fid"]["per_seed"] == [90.0, 91.0, 90.0]
    with pytest.raises(SystemExit, match="base seed 1 appears again in run/seed1"):
        t1.add_seed(results, "base", {**recs[0], "seed": 1}, "run/seed1")
    with pytest.raises(SystemExit, match="not paper / 1000"):
        t1.earlier(old, "paper", 1000)  # CFD over another sample count is not comparable
    # The whole path main() takes: the earlier JSON's seeds 0, 1 and 3, then this run's seeds 4 and 5, each once.
    for seed in (4, 5):
        (tmp_path / "abl" / "base" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "abl" / "base" / f"seed{seed}" / "eval.json").write_text(json.dumps({**recs[1], "cfd": None}))
    old.write_text(json.dumps({"protocol": "paper", "samples": 5000, "rows": rows}))
    got = t1.gather(t1.cells(tmp_path / "abl"), [str(old)], "paper", 5000, lambda run: {"cfd": 7.0})
    _, both = t1.table(got, "paper")
    assert both["base"]["seed_ids"] == [0, 1, 3, 4, 5] and both["base"]["seeds"] == 5
    assert both["base"]["cfd"]["per_seed"] == [20.0, 20.0, 20.0, 7.0, 7.0]
    with pytest.raises(SystemExit, match="base seed 3 appears again"):
        (tmp_path / "abl" / "base" / "seed3").mkdir()
        (tmp_path / "abl" / "base" / "seed3" / "eval.json").write_text(json.dumps(recs[0]))
        t1.gather(t1.cells(tmp_path / "abl"), [str(old)], "paper", 5000, lambda run: {"cfd": 7.0})
    with pytest.raises(SystemExit, match="holds the evaluations' own FID, this run FID on 5000 samples"):
        t1.earlier(old, "paper", 5000, fid_samples=5000)  # FID at 1-2K and at 5K are not one measure
    rows["base"]["cfd"]["per_seed"].pop()
    old.write_text(json.dumps({"protocol": "paper", "samples": 5000, "rows": rows}))
    with pytest.raises(SystemExit, match="2 cfd values for 3 seeds"):
        t1.earlier(old, "paper", 5000)


def test_table1_power_joins_ablation_directories_and_rescores_fid_once_per_checkpoint(tmp_path, monkeypatch):
    import types

    import pytest

    t1 = _module("table1_power")
    for root, seeds in (("a", (0, 1)), ("b", (2,))):
        (tmp_path / root).mkdir()
        (tmp_path / root / "protocol.txt").write_text("paper\n")
        for seed in seeds:
            run = tmp_path / root / "base" / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "eval.json").write_text(json.dumps({"checkpoint": f"{run}/ckpt-2.pt", "fid": 90.0,
                                                       "inception_precision": "bf16"}))
    roots = [tmp_path / "a", tmp_path / "b"]
    assert t1.protocol_of(roots) == "paper"
    assert [p.name for p in t1.cells(*roots)["base"]] == ["seed0", "seed1", "seed2"]
    (tmp_path / "b" / "protocol.txt").write_text("fast\n")
    with pytest.raises(SystemExit, match="ran different protocols"):
        t1.protocol_of(roots)

    calls = []

    def fake_metrics(cfg, G, *, n, metrics, inception_weights, inception_precision):
        calls.append((G, n, inception_precision))
        return {"fid": 40.0 + len(calls), "fid_samples": n}

    from bigbigan.evaluation import generative
    monkeypatch.setattr(generative, "generation_metrics", fake_metrics)
    monkeypatch.setattr(t1.bigbigan, "load", lambda path: types.SimpleNamespace(cfg=None, G=path))
    run = tmp_path / "a" / "base" / "seed0"
    first = t1.score_fid(run, 5000)
    assert first["fid"] == 41.0 and calls == [(f"{run}/ckpt-2.pt", 5000, "bf16")]  # the run's own precision
    assert t1.score_fid(run, 5000)["fid"] == 41.0 and len(calls) == 1  # cached beside the run
    (run / "eval.json").write_text(json.dumps({"checkpoint": f"{run}/ckpt-4.pt", "inception_precision": "fp32"}))
    assert t1.score_fid(run, 5000)["fid"] == 42.0 and calls[-1][2] == "fp32"  # another checkpoint: scored again


def test_fashion_mnist_stops_without_evaluating_a_run_stopped_by_a_signal(tmp_path, monkeypatch):
    """A SIGTERM mid-training (the run checkpoints and returns) must not be evaluated and published as finished."""
    import pytest

    fm = _module("fashion_mnist")
    monkeypatch.setattr(fm, "run_training", lambda cfg, run: {"stopped_by": "SIGTERM", "step": 7, "seconds": 3.0,
                                                              "iterations": 7})
    monkeypatch.setattr(fm, "evaluated", lambda *a, **k: pytest.fail("a stopped run was evaluated"))
    with pytest.raises(SystemExit) as stop:
        fm.train_and_evaluate(None, tmp_path, None)
    assert stop.value.code == 143
    assert json.loads((tmp_path / "train.json").read_text())["seconds"] == 3.0  # its minutes still counted


def test_fashion_mnist_train_only_trains_every_seed_and_evaluates_and_writes_nothing(tmp_path, monkeypatch):
    """``--train-only`` (seeds side by side): each seed's run is trained to its length, then the command stops
    before any evaluation, baseline or results file; a run that is not finished still exits non-zero."""
    import pytest

    fm = _module("fashion_mnist")
    trained = []
    monkeypatch.setattr(fm, "run_training", lambda cfg, run: trained.append((cfg.train.seed, cfg.optim.batch_size))
                        or {"stopped_by": "steps", "step": cfg.train.steps, "seconds": 1.0, "iterations": 3})
    monkeypatch.setattr(fm, "evaluated", lambda *a, **k: pytest.fail("--train-only evaluated a run"))
    monkeypatch.setattr(fm, "splits", lambda cfg: pytest.fail("--train-only measured a baseline"))
    results = tmp_path / "fm.json"
    argv = ["--seeds", "1,2", "--steps", "3", "--out", str(tmp_path / "runs"), "--json", str(results),
            "--set", "optim.batch_size=64", "--train-only"]
    assert fm.main(argv) == 0
    assert trained == [(1, 64), (2, 64)] and not results.exists()
    monkeypatch.setattr(fm, "run_training", lambda cfg, run: {"stopped_by": "SIGINT", "step": 1, "seconds": 1.0,
                                                              "iterations": 1})
    with pytest.raises(SystemExit) as stop:
        fm.main(argv)
    assert stop.value.code != 0


def test_long_curve_windows_gain_and_level(tmp_path):
    lc = _module("long_curve")
    # Rises 2 points per 1,000 iterations to 4,000, then stays within 0.1 of 86: level from the window after.
    tops = {500: 80.0, 1000: 81.0, 1500: 82.0, 2000: 83.0, 2500: 84.0, 3000: 85.0, 3500: 86.0, 4000: 86.0,
            4500: 86.1, 5000: 85.9, 5500: 86.0, 6000: 86.1}
    with (tmp_path / "metrics.jsonl").open("w") as f:
        for s, t in reversed(tops.items()):  # out of order on purpose: sorted by step
            f.write(json.dumps({"step": s, "minutes": s / 100, "train_val_top1": t / 100}) + "\n")  # a fraction
        f.write(json.dumps({"step": 6000, "fid": 30.0}) + "\n")  # other records are ignored
    pts = lc.train_val_points(tmp_path)
    assert [p["step"] for p in pts] == sorted(tops)
    assert [p["train_val_top1"] for p in pts] == [100 * (tops[s] / 100) for s in sorted(tops)]  # in percent
    w = lc.window_gains(pts, 2000)
    assert [x["from_step"] for x in w] == [0, 2000, 4000]
    assert abs(w[0]["mean_top1"] - 81.5) < 1e-9 and "gain_per_1000" not in w[0]
    assert abs(w[1]["gain_per_1000"] - (85.25 - 81.5) / 2) < 1e-9
    assert abs(w[2]["gain_per_1000"] - (86.025 - 85.25) / 2) < 1e-9  # 0.39: not yet level at 0.25
    assert lc.level_from(w, 0.25) is None
    assert lc.level_from(w, 0.5) == 4000
    assert lc.level_from(lc.window_gains(pts, 1000), 0.25) == 4000  # 1,000-wide windows: flat from 4,000 on
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    try:
        lc.train_val_points(tmp_path)
    except SystemExit as exc:
        assert "eval_every" in str(exc)
    else:
        raise AssertionError("a run without periodic evaluations must be refused")


def test_elr_batch_gaps_by_images_seen_pair_seeds_and_refuse_partial_iterations(tmp_path):
    eb = _module("elr_batch")
    for b, mult, seed, accs in ((32, 1.0, 0, [0.80, 0.82]), (32, 10.0, 0, [0.70, 0.74]),
                                (32, 1.0, 1, [0.78, 0.84]), (32, 10.0, 1, [0.72, 0.72]),
                                (128, 1.0, 0, [0.79, 0.81]), (128, 10.0, 0, [0.80, 0.83])):
        run = eb.run_dir(tmp_path, b, mult, seed)
        run.mkdir(parents=True)
        every = 12800 // b
        (run / "metrics.jsonl").write_text("".join(json.dumps({"step": every * (i + 1), "minutes": 1.0 * i,
                                                               "train_val_top1": a}) + "\n"
                                                   for i, a in enumerate(accs)))
        (run / "stats.jsonl").write_text(json.dumps({"step": every, "time/minutes": 1.0}) + "\n")
    curves = {(b, m, s): eb.curve_by_images(eb.run_dir(tmp_path, b, m, s), b)
              for b, m, s in ((32, 1.0, 0), (32, 10.0, 0), (32, 1.0, 1), (32, 10.0, 1), (128, 1.0, 0),
                              (128, 10.0, 0))}
    assert set(curves[(128, 1.0, 0)]) == {12800, 25600}  # steps 100 and 200 at batch 128: the same images seen
    s = eb.summarise(curves, [32, 128], 10.0, [0, 1])
    b32 = s["32"]
    assert b32["seeds"] == 2 and [r["images"] for r in b32["points"]] == [12800, 25600]
    assert abs(b32["points"][0]["gap"] - (-8.0)) < 1e-9  # (70 - 80 + 72 - 78) / 2
    assert [round(g, 6) for g in b32["points"][1]["gaps"]] == [-8.0, -12.0]
    assert b32["welch_last"]["p"] is not None and b32["welch_last"]["diff"] < 0
    b128 = s["128"]  # seed 1 missing at batch 128: only the complete pair counts, and Welch cannot test one seed
    assert b128["seeds"] == 1 and abs(b128["points"][1]["gap"] - 2.0) < 1e-9 and b128["welch_last"]["p"] is None
    assert "| 32 | 2 | 25,600 |" in eb.table(s, 10.0)
    try:
        eb.config(128, 1.0, 0, 25600 + 32, 12800, [])
    except SystemExit as e:
        assert "not a multiple of batch size 128" in str(e)
    else:
        raise AssertionError("a partial iteration was accepted")


def test_iteration_ab_passes_config_overrides_to_both_trees_and_writes_json(tmp_path):
    """Two copies of the same tree dispatch the same operators; the --set override reaches the child processes
    (bf16 autocast adds cast operators over fp32)."""
    src = str(ROOT / "src")
    ops = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "iteration_ab.py"), "--a", src, "--b", src,
                        "--scale", "tiny", "--rounds", "1", "--warmup", "0", "--iterations", "1",
                        "--set", f"train.precision={precision}", "--json", str(out)],
                       check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        rec = json.loads(out.read_text())
        assert rec["sets"] == [f"train.precision={precision}"]
        assert rec["ops_per_it"]["A"] == rec["ops_per_it"]["B"] > 0
        assert len(rec["s_per_it"]["A"]) == len(rec["s_per_it"]["B"]) == 1
        ops[precision] = rec["ops_per_it"]["A"]
    assert ops["bf16"] > ops["fp32"]


def test_fid_noise_scores_each_draw_once_and_splits_the_seed_spread(tmp_path, monkeypatch, capsys):
    import types

    import pytest

    fn = _module("fid_noise")
    t1 = sys.modules["table1_power"]  # the module fid_noise's cache comes from
    fids = {("base", 0): [50.0, 52.0, 48.0], ("base", 1): [44.0, 46.0, 45.0]}  # per sample seed
    calls = []

    def fake_metrics(cfg, G, *, n, metrics, inception_weights, seed, inception_precision):
        calls.append((G, n, seed, inception_precision))
        variant, s = G.split("/")[-3], int(G.split("/")[-2][4:])
        return {"fid": fids[(variant, s)][seed], "fid_samples": n}

    from bigbigan.evaluation import generative
    monkeypatch.setattr(generative, "generation_metrics", fake_metrics)
    monkeypatch.setattr(t1.bigbigan, "load", lambda path: types.SimpleNamespace(cfg=None, G=path))
    runs = []
    for s in (0, 1):
        run = tmp_path / "abl" / "base" / f"seed{s}"
        run.mkdir(parents=True)
        (run / "eval.json").write_text(json.dumps({"checkpoint": f"{run}/ckpt.pt", "fid": fids[("base", s)][0],
                                                   "fid_samples": 1000, "inception_precision": "bf16"}))
        runs.append(str(run))
    assert fn.main([*runs, "--draws", "3", "--json", str(tmp_path / "n.json")]) == 0
    assert sorted(c[2] for c in calls) == [0, 0, 1, 1, 2, 2] and {c[1:4:2] for c in calls} == {(1000, "bf16")}
    out = json.loads((tmp_path / "n.json").read_text())
    row = out["rows"]["base"]
    assert row["sampling_std"] == pytest.approx(((4.0 + 1.0) / 2) ** 0.5)  # variances 4 and 1 over the draws
    assert row["seed_std"] == pytest.approx(6.0 / 2**0.5) and row["seeds"] == 2  # evaluated FIDs 50 and 44
    assert row["sampling_share"] == pytest.approx(2.5 / 18.0)
    assert "| base | 2 x 3 | 1.58 | 4.24 (2) | 0.14 |" in capsys.readouterr().out
    assert fn.main([*runs, "--draws", "3"]) == 0 and len(calls) == 6  # cached beside each run: nothing again
    # the spread over training seeds from a table1_power JSON (more seeds than the runs scored here)
    spread = tmp_path / "t1.json"
    spread.write_text(json.dumps({"rows": {"base": {"fid": {"per_seed": [40.0, 50.0, 60.0]}}}}))
    assert fn.main([*runs, "--draws", "3", "--seed-spread", str(spread), "--json", str(tmp_path / "n.json")]) == 0
    row = json.loads((tmp_path / "n.json").read_text())["rows"]["base"]
    assert row["seed_std"] == pytest.approx(10.0) and row["seeds"] == 3
    with pytest.raises(SystemExit, match="at least 2"):
        fn.main([*runs, "--draws", "1"])
    with pytest.raises(SystemExit, match="no eval.json"):
        fn.main([str(tmp_path / "abl" / "base")])


def test_levers_takes_probe_time_off_the_clock_and_compares_arms_at_equal_training_minutes(tmp_path, monkeypatch):
    lv = _module("levers")

    def arm(name, points, eval_seconds):
        run = tmp_path / f"{name}-s0"
        run.mkdir()
        recs = [{"step": s, "minutes": m, "train_val_top1": t / 100, "eval_seconds": eval_seconds}
                for s, m, t in points]
        recs.insert(1, {"step": points[0][0], "fid": 30.0})  # other records: not probes, no time taken off
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        (run / "stats.jsonl").write_text(json.dumps({"step": points[0][0], "time/minutes": 0.5}) + "\n")
        return {"arm": name, "seed": 0, "change": name, "iterations": points[-1][0], "s_per_it": 1.0,
                "curve": lv.curve(run)}

    # base probes take 60 s each: its third probe starts at wall minute 12, i.e. 10 minutes of training.
    base = arm("base", [(100, 2.0, 80.0), (200, 7.0, 82.0), (300, 12.0, 84.0)], 60.0)
    assert [p["train_minutes"] for p in base["curve"]] == [2.0, 6.0, 10.0]
    assert [p["train_val_top1"] for p in base["curve"]] == [80.0, 82.0, 84.0]  # in percent
    fast = arm("d1", [(150, 3.0, 81.0), (300, 9.0, 85.0)], 0.0)  # 9 minutes: the common end
    cmp = lv.compare([base, fast])
    assert cmp["minutes"] == [3.0, 6.0, 9.0]  # from the last arm's first probe (d1: 3.0) to the first arm's end
    assert cmp["arms"]["base"]["top1"] == [80.5, 82.0, 83.5]  # 80 + (3 - 2) / (6 - 2) * 2; 82 + (9 - 6) / 4 * 2
    assert cmp["arms"]["d1"]["top1"] == [81.0, 83.0, 85.0]
    assert cmp["arms"]["d1"]["gap"] == [0.5, 1.0, 1.5] and cmp["arms"]["base"]["gap"] == [0.0, 0.0, 0.0]
    assert lv.at(base["curve"], 1.0) is None  # before the first probe: no figure, not an extrapolation
    assert "| d1 | d1 | 1.000 | 300 | 81.00% | 83.00% | 85.00% | +1.50 |" in lv.table(cmp)
    fast["curve"][0]["train_minutes"] = 3.04  # the first common mark rounds up: never before an arm's first probe
    assert lv.compare([base, fast])["minutes"][0] == 3.1
    # The final probe: appended once at the end of training (wall clock less the probes' time), then kept.
    calls = []

    class Probe:
        def __init__(self, cfg):
            calls.append(cfg)

        def probe(self, E):
            return 0.86

    monkeypatch.setattr(lv, "load_models", lambda run: SimpleNamespace(cfg="cfg", E="E"))
    monkeypatch.setattr(lv, "PeriodicEval", Probe)
    base.update(iterations=420, wall_minutes=20.0, probe_minutes=3.0)
    lv.with_final_probe(tmp_path / "base-s0", base)
    assert base["curve"][-1] == {"step": 420, "minutes": 20.0, "train_minutes": 17.0, "train_val_top1": 86.0,
                                 "final": True}
    assert json.loads((tmp_path / "base-s0" / "arm.json").read_text())["curve"][-1]["step"] == 420
    lv.with_final_probe(tmp_path / "base-s0", base)
    assert len(calls) == 1 and len(base["curve"]) == 4
    try:
        lv.config("b64", 0, 20.0, 4800 + 32, [])
    except SystemExit as e:
        assert "not a multiple of arm b64's batch size 64" in str(e)
    else:
        raise AssertionError("a probe interval of partial iterations was accepted")


def test_fashion_mnist_random_init_baseline_measures_that_row_and_copies_the_others(tmp_path, monkeypatch):
    """``--baselines random-init`` (a changed encoder): random_init is measured with the run's configuration,
    pixels and supervised are copied with their own command; a results file without them is refused."""
    import pytest

    fm = _module("fashion_mnist")
    out, results = tmp_path / "runs", tmp_path / "fm.json"
    monkeypatch.setattr(fm, "train_and_evaluate", lambda cfg, run, args: {"linear_top1": 0.9, "iterations": 5})
    monkeypatch.setattr(fm, "splits", lambda cfg: {})
    widths = []
    monkeypatch.setattr(fm, "build_models", lambda cfg: (None, None, cfg.model.encoder.width))
    monkeypatch.setattr(fm, "encoder_metrics", lambda E, cfg, srcs, steps: widths.append(E) or
                        {"linear_avepool_top1": 0.6})
    monkeypatch.setattr(fm, "pixel_metrics", lambda *a: pytest.fail("pixels were measured, not copied"))
    monkeypatch.setattr(fm, "train_supervised", lambda *a: pytest.fail("supervised was trained, not copied"))
    argv = ["--steps", "5", "--out", str(out), "--json", str(results), "--baselines", "random-init",
            "--set", "model.encoder.width=3"]
    results.write_text(json.dumps({"pixels": {"linear_top1": 0.845, "command": "old"}}))
    with pytest.raises(SystemExit):  # supervised is missing: refused before any training
        fm.main(argv)
    kept = {name: {"linear_top1": top1, "command": "old", "all": {"linear_avepool_top1": top1}}
            for name, top1 in (("pixels", 0.845), ("supervised", 0.917), ("random_init", 0.626))}
    (tmp_path / "headline.json").write_text(json.dumps(kept))
    (out / "seed0").mkdir(parents=True)  # the run directory training would have made
    assert fm.main([*argv, "--keep-from", str(tmp_path / "headline.json")]) == 0
    got = json.loads(results.read_text())
    assert widths == [3]  # the random encoder of the run's own configuration, not the kept x2 row
    assert got["random_init"]["linear_top1"] == 0.6 and got["random_init"]["command"] != "old"
    assert got["pixels"] == kept["pixels"] and got["supervised"] == kept["supervised"]
    assert got["trained"]["linear_top1"] == 0.9
    written = json.loads((out / "seed0" / "baselines.json").read_text())  # what the run's report shows
    assert written["random_init"] == {"linear_avepool_top1": 0.6} and written["pixels"] == kept["pixels"]["all"]


def test_fashion_mnist_compare_tests_each_figure_over_the_seeds():
    fm = _module("fashion_mnist")
    ours = {"seeds": [{"linear_top1": 0.90, "fid": 20.0}, {"linear_top1": 0.91, "fid": 22.0},
                      {"linear_top1": 0.92, "fid": None}]}
    theirs = {"seeds": [{"linear_top1": 0.88, "fid": 25.0}, {"linear_top1": 0.87, "fid": 24.0},
                        {"linear_top1": 0.89, "fid": 26.0}]}
    got = fm.compare_trained(ours, theirs)
    assert set(got) == {"linear_top1"}  # fid: one of our seeds lacks it, so no test
    w = got["linear_top1"]
    assert abs(w["diff"] - 0.03) < 1e-12 and w["p"] < 0.05 and w["ours"] == [0.90, 0.91, 0.92]
    same = fm.compare_trained(theirs, theirs)["fid"]
    assert same["diff"] == 0 and same["p"] > 0.99
