"""`bigbigan ablate`: variants x seeds trained and evaluated, Table 1's form, resumable, fail-fast on typos."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from bigbigan.ablate import directions, mean_std, seeds_for_power, summarise, verdict, welch
from bigbigan.cli import main

pytestmark = pytest.mark.usefixtures("single_thread_own_cache")


def test_mean_std_and_table_form():
    assert mean_std([None, None]) is None
    assert mean_std([2.0]) == (2.0, 0.0)
    m, s = mean_std([1.0, 3.0, None])
    assert m == 2.0 and s == pytest.approx(2**0.5)
    md, table = summarise({"base": [{"fid": 10.0, "linear_avepool_top1": 0.5}, {"fid": 14.0, "linear_avepool_top1": 0.7}],
                           "no-unaries": [{"fid": 20.0, "linear_avepool_top1": 0.4}]})
    assert table["base"]["fid"] == {"mean": 12.0, "std": pytest.approx(8**0.5)} and table["base"]["is"] is None
    assert "| base |" in md and "12.00 ± 2.83" in md and "60.00 ± 14.14" in md and "n/a" in md
    assert table["no-unaries"]["seeds"] == 1
    assert md.startswith("Protocol: fast (") and "test top-1 %" not in md


def test_paper_table_reports_train_val_as_cls_and_a_test_column():
    runs = [{"linear_paper_avepool_train_val_top1": 0.5, "linear_paper_avepool_top1": 0.4, "linear_avepool_top1": 0.9},
            {"linear_paper_avepool_train_val_top1": 0.7, "linear_paper_avepool_top1": 0.6, "linear_avepool_top1": 0.9}]
    md, table = summarise({"base": runs}, "paper")
    assert md.startswith("Protocol: paper (")
    header, rule, row = md.splitlines()[2:5]
    assert header.endswith("| Cls. % (train_val, ↑) | test top-1 % (↑) |") and rule.count("|---") == 7
    assert row.endswith("| 60.00 ± 14.14 | 50.00 ± 14.14 |")
    assert table["base"]["cls"]["mean"] == pytest.approx(0.6) and table["base"]["test"]["mean"] == pytest.approx(0.5)


def test_welch_against_the_closed_form_at_two_degrees_of_freedom():
    # n = 2 per side with equal variances: Welch's df is exactly 2, where the t CDF is 1/2 + t / (2 sqrt(2 + t^2))
    r = welch([0.0, 2.0], [3.0, 5.0])
    t = -3 / 2**0.5
    assert r["diff"] == -3.0 and r["t"] == pytest.approx(t) and r["df"] == pytest.approx(2.0)
    assert r["p"] == pytest.approx(1 - abs(t) / (2 + t * t) ** 0.5)
    lo, hi = r["ci95"]  # t_{0.975, 2} = 4.302653 (tables)
    assert lo == pytest.approx(-3 - 4.302653 * 2**0.5, rel=1e-6) and hi == pytest.approx(-3 + 4.302653 * 2**0.5, rel=1e-6)
    # unequal variances: df between min(n) - 1 and the pooled n_a + n_b - 2
    r = welch([1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0])
    assert 2.0 < r["df"] < 5.0
    assert welch([1.0], [2.0, 3.0])["p"] is None and welch([1.0, 1.0], [2.0, 2.0])["p"] is None


def test_seeds_for_power_matches_the_two_sample_t_test_tables():
    # Cohen's tables, two-sided alpha 0.05, power 0.8: d = 0.5 -> 64 per group, 0.8 -> 26, 1.0 -> 17
    assert [seeds_for_power(d, 1.0) for d in (0.5, 0.8, 1.0)] == [64, 26, 17]
    assert seeds_for_power(-5.0, 10.0) == 64  # the sign does not matter, the ratio does
    assert seeds_for_power(1.0, 1.0, power=0.9) > 17 and seeds_for_power(1.0, 1.0, alpha=0.01) > 17
    assert seeds_for_power(0.0, 1.0) is None and seeds_for_power(1.0, 0.0) is None
    assert seeds_for_power(1e-3, 1.0, most=1000) is None  # past the cap: said, not looped on


def test_directions_give_a_verdict_that_follows_the_data():
    assert verdict({"p": 0.01, "diff": -2.0}, -1).startswith("reproduced")
    assert verdict({"p": 0.01, "diff": 2.0}, -1).startswith("reversed")
    assert verdict({"p": 0.2, "diff": -2.0}, -1).startswith("not resolved")
    runs = lambda fids, cls: [{"fid": f, "linear_avepool_top1": c} for f, c in zip(fids, cls)]
    res = {"base": runs([30.0, 31.0, 32.0], [0.50, 0.51, 0.52]),
           "z-unary-only": runs([40.0, 41.0, 42.5], [0.50, 0.52, 0.51]),  # x unary helps FID: reproduced
           "deterministic-e": runs([30.0, 31.0, 32.0], [0.60, 0.61, 0.62]),  # stochastic E hurts Cls.: reversed
           "no-unaries": runs([20.0, 45.0, 31.0], [0.40, 0.70, 0.5])}  # large spread: not resolved
    md, rows = directions(res)
    by = {r["claim"]: r for r in rows}
    assert by["x unary improves FID"]["verdict"].startswith("reproduced")
    assert by["x unary improves FID"]["diff"] == pytest.approx(31.0 - 41.1666667)
    assert by["stochastic E improves Cls."]["verdict"].startswith("reversed")
    assert by["stochastic E improves Cls."]["diff"] == pytest.approx(-10.0)  # in points
    assert by["no unaries (BiGAN's objective) hurt FID"]["verdict"].startswith("not resolved")
    assert "↑E LR improves Cls." not in by  # its variants were not run
    # at the measured gap and spread: base/z-unary-only FID std 1.0 and 1.26, gap 10.2 -> 2 seeds do; the
    # no-unaries gap (0.83) in a std of ~8 needs hundreds
    assert by["x unary improves FID"]["seeds_for_power"] == 2
    assert by["no unaries (BiGAN's objective) hurt FID"]["seeds_for_power"] > 300
    assert "| x unary improves FID | base - z-unary-only (fid) | -8.29 |" in md
    # the directions the paper states in its text: same rows, their own metric and sign
    assert by["x unary improves Cls. (text)"]["diff"] == pytest.approx(0.0)  # 51.0 against 51.0 points
    assert by["x unary improves Cls. (text)"]["paper_diff"] == pytest.approx(0.32)
    zf = by["z unary improves FID without the x unary (text)"]
    assert (zf["a"], zf["b"], zf["diff"]) == ("z-unary-only", "no-unaries", pytest.approx(41.1666667 - 32.0))
    assert zf["verdict"].startswith("not resolved")  # no-unaries' spread
    # another measure in FID's place (a second generation measure): tested and labelled by its own key
    for r in res.values():
        for run in r:
            run["cfd"] = -run["fid"]  # the opposite ordering: the FID verdict must turn round
    md2, rows2 = directions(res, fid_key="cfd")
    by2 = {r["claim"]: r for r in rows2}
    assert by2["x unary improves FID"]["verdict"].startswith("reversed")
    assert by2["x unary improves FID"]["diff"] == pytest.approx(41.1666667 - 31.0)
    assert by2["stochastic E improves Cls."]["diff"] == pytest.approx(-10.0)  # Cls. unchanged
    assert "| x unary improves FID | base - z-unary-only (cfd) |" in md2


@pytest.mark.slow  # 4 trainings and FIDs (minutes on 2 cores)
@pytest.mark.inception
def test_ablate_trains_each_variant_and_seed_then_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "--scale", "tiny", "--variants", "base,no-unaries", "--seeds", "2", "--steps", "2",
            "--fid-samples", "10", "--probe-steps", "20", "--out", str(out)]
    assert main(argv) == 0
    log = capsys.readouterr().out
    order = [line.split(":")[0] for line in log.splitlines() if line.startswith("== ")]
    assert order == ["== base seed 0", "== no-unaries seed 0", "== base seed 1", "== no-unaries seed 1"]
    table = json.loads((out / "ablation.json").read_text())
    assert table["scale"] == "tiny" and list(table["rows"]) == ["base", "no-unaries"]
    assert table["protocol"] == "fast" and (out / "ablation.md").read_text().startswith("Protocol: fast (")
    for variant, row in table["rows"].items():
        evals = [json.loads((out / variant / f"seed{s}" / "eval.json").read_text()) for s in (0, 1)]
        cls = [e["linear_avepool_top1"] for e in evals]
        assert row["seeds"] == 2
        assert row["cls"]["mean"] == pytest.approx(sum(cls) / 2)
        assert all(e["fid"] > 0 for e in evals)
        assert row["fid"]["mean"] == pytest.approx(sum(e["fid"] for e in evals) / 2)
        cfg = yaml.safe_load((out / variant / "seed1" / "config.yaml").read_text())
        assert cfg["train"]["seed"] == 1 and cfg["train"]["steps"] == 2
    assert yaml.safe_load((out / "no-unaries" / "seed0" / "config.yaml").read_text())["objective"]["terms"] == ["xz"]
    assert "| variant |" in (out / "ablation.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("ckpt-*.pt")}
    assert stamps
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done, skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("ckpt-*.pt")} == stamps  # nothing retrained
    assert main(argv + ["--protocol", "paper"]) == 2  # finished fast runs are not mixed into a paper table
    assert "holds runs of --protocol fast" in capsys.readouterr().err


@pytest.mark.slow  # 2 trainings and FIDs in worker processes
@pytest.mark.inception
def test_ablate_jobs_runs_each_variant_in_its_own_process_then_summarises(tmp_path, capsys):
    out = tmp_path / "abl"  # --first-seed 3: more seeds for an ablation whose seeds 0-2 ran elsewhere
    argv = ["ablate", "--scale", "tiny", "--variants", "base,no-unaries", "--seeds", "1", "--first-seed", "3",
            "--steps", "2", "--fid-samples", "10", "--probe-steps", "20", "--out", str(out), "--jobs", "2"]
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert "2 runs, 2 at a time, 1 thread(s) each" in log
    assert log.count(": started (log ") == 2 and log.count(": finished") == 2
    assert log.count("done, skipped") == 2  # the parent only reads what its workers wrote
    table = json.loads((out / "ablation.json").read_text())
    assert list(table["rows"]) == ["base", "no-unaries"] and all(r["seeds"] == 1 for r in table["rows"].values())
    for variant in ("base", "no-unaries"):
        assert "training in" in (out / "logs" / f"{variant}-seed3.log").read_text()
        assert json.loads((out / variant / "seed3" / "eval.json").read_text())["fid"] > 0
        assert yaml.safe_load((out / variant / "seed3" / "config.yaml").read_text())["train"]["seed"] == 3
    assert sorted(p.name for p in out.glob("*/seed*")) == ["seed3", "seed3"]
    assert yaml.safe_load((out / "no-unaries" / "seed3" / "config.yaml").read_text())["objective"]["terms"] == ["xz"]


@pytest.mark.slow
@pytest.mark.inception  # ablate's default metrics include fid: refused before training without it
def test_ablate_jobs_passes_sigterm_on_so_every_run_saves_then_exits_143(tmp_path):
    out = tmp_path / "abl"
    cmd = [sys.executable, "-m", "bigbigan", "ablate", "--scale", "tiny", "--variants", "base,no-unaries",
           "--steps", "100000", "--out", str(out), "--jobs", "2", "--set", "train.ckpt_every=100000",
           "--set", "data.train_val_size=100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    stats = [out / v / "seed0" / "stats.jsonl" for v in ("base", "no-unaries")]
    deadline = time.time() + 180
    while time.time() < deadline and not all(p.is_file() for p in stats):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    for v in ("base", "no-unaries"):
        assert list((out / v / "seed0" / "checkpoints").glob("ckpt-*.pt")), v  # saved on the way out
        assert not (out / v / "seed0" / "eval.json").exists()


@pytest.mark.inception  # fid (a default metric) is checked before --jobs and --cell
def test_ablate_rejects_zero_jobs_and_a_bad_cell_in_one_line(tmp_path, capsys):
    base = ["ablate", "--scale", "tiny", "--variants", "base", "--steps", "2", "--out", str(tmp_path / "abl")]
    assert main(base + ["--jobs", "0"]) == 2
    assert "--jobs 0" in capsys.readouterr().err
    assert main(base + ["--cell", "no-unaries:0"]) == 2
    assert "--cell 'no-unaries:0'" in capsys.readouterr().err
    assert main(base + ["--first-seed", "-1"]) == 2
    assert "--first-seed -1" in capsys.readouterr().err
    assert main(base + ["--first-seed", "3", "--seeds", "2", "--cell", "base:2"]) == 2  # seeds 3 and 4 only
    assert "SEED in 3..4" in capsys.readouterr().err
    assert not (tmp_path / "abl" / "base").exists()


@pytest.mark.inception
def test_ablate_paper_protocol_early_stops_on_train_val_and_probes_augmented_inputs(tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--scale", "tiny", "--variants", "base", "--seeds", "1", "--steps", "4",
                 "--eval-every", "2", "--fid-samples", "10", "--probe-steps", "20", "--out", str(out),
                 "--protocol", "paper"]) == 0
    run = out / "base" / "seed0"
    periodic = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in periodic] == [2, 4]  # train_val probe during training
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    res = json.loads((run / "eval.json").read_text())
    assert res["protocol"] == "paper" and res["step"] == best["step"]  # evaluated the early-stopped checkpoint
    assert res["checkpoint"].endswith(best["checkpoint"])
    assert "linear_avepool_top1" not in res  # the augmented probe, not the fast one
    table = json.loads((out / "ablation.json").read_text())
    assert table["protocol"] == "paper" and table["eval_every"] == 2
    row = table["rows"]["base"]
    assert row["cls"]["mean"] == pytest.approx(res["linear_paper_avepool_train_val_top1"])
    assert row["test"]["mean"] == pytest.approx(res["linear_paper_avepool_top1"])
    md = (out / "ablation.md").read_text()
    assert md.startswith("Protocol: paper (") and "| Cls. % (train_val, ↑) | test top-1 % (↑) |" in md


def test_ablate_rejects_an_unknown_protocol_in_one_line_before_training(tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--scale", "tiny", "--variants", "base", "--steps", "2", "--out", str(out),
                 "--protocol", "papr"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "papr" in err and "fast, paper" in err
    assert not out.exists()


def test_ablate_rejects_an_unknown_variant_before_training(tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--scale", "tiny", "--variants", "base,no-unaires", "--steps", "2", "--out", str(out)]) == 2
    assert "no-unaires" in capsys.readouterr().err
    assert not (out / "base").exists()


@pytest.mark.inception
def test_ablate_passes_the_inception_precision_to_each_runs_fid(tmp_path):
    out = tmp_path / "abl"
    assert main(["ablate", "--scale", "tiny", "--variants", "base", "--steps", "1", "--fid-samples", "10",
                 "--probe-steps", "5", "--inception-precision", "bf16", "--out", str(out)]) == 0
    res = json.loads((out / "base" / "seed0" / "eval.json").read_text())
    assert res["inception_precision"] == "bf16" and res["fid"] > 0


def test_the_protocol_marker_is_written_once_so_starting_workers_never_read_it_half_written(tmp_path, monkeypatch):
    """`--jobs` workers each check the marker as they start; rewriting it for every worker (truncate, then write)
    let one worker read an empty protocol and refuse its run (seen in a 12-run ablation)."""
    from pathlib import Path

    from bigbigan import ablate

    ablate._claim_protocol(tmp_path, "paper")
    assert (tmp_path / "protocol.txt").read_text() == "paper\n"
    writes = []
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: writes.append(self))
    monkeypatch.setattr(ablate, "atomic_write_text", lambda path, text: writes.append(path))
    ablate._claim_protocol(tmp_path, "paper")  # a worker starting later: reads, never writes
    assert writes == []
    with pytest.raises(ablate.ConfigError, match="holds runs of --protocol paper"):
        ablate._claim_protocol(tmp_path, "fast")
