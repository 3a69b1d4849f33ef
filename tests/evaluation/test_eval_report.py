"""The report's summary and metric tables: number formats, the k-NN table, wall time, the stale-eval warning."""

import json
import os
import re

from bigbigan.evaluation.report import fmt_value, knn_table, train_val_curve, training_minutes, write_report


def test_numbers_are_formatted_for_people():
    assert fmt_value("linear_avepool_lr", 0.01) == "0.01"
    assert fmt_value("linear_avepool_top1", 0.8818) == "88.18%"
    assert fmt_value("knn_d1_k5_top5", 1.0) == "100.00%"
    assert fmt_value("fid", 26.331981) == "26.33"
    assert fmt_value("kid", 0.005494849) == "0.005495"
    assert fmt_value("fid_samples", 10000) == "10,000"
    assert fmt_value("step", 400) == "400"
    assert fmt_value("rel_l1", float("nan")) == "n/a"


def test_training_minutes_sums_the_sessions_of_a_resumed_run():
    stats = [{"time/minutes": 1.0}, {"time/minutes": 2.5}, {"step": 9},  # session 1 ends at 2.5
             {"time/minutes": 0.5}, {"time/minutes": 1.5}]  # resumed: the clock restarted
    assert training_minutes(stats) == 4.0
    assert training_minutes([]) == 0.0


def test_train_val_curve_counts_minutes_over_the_sessions_of_a_resumed_run(tmp_path):
    # Session 1 logged steps 25-100 (4.0 min at 100; the crash after it dropped nothing kept); session 2 resumed
    # from the checkpoint at 100, its clock restarting at 0.
    stats = [{"step": s, "time/minutes": s / 25} for s in (25, 50, 75, 100)]
    stats += [{"step": s, "time/minutes": (s - 100) / 20} for s in (125, 150, 175, 200)]
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stats))
    metrics = [{"step": 200, "minutes": 5.1, "train_val_top1": 0.7}, {"step": 100, "minutes": 4.1, "train_val_top1": 0.6},
               {"step": 150, "fid": 40.0}, {"step": 50, "train_val_top1": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    curve = train_val_curve(tmp_path)
    assert [p["step"] for p in curve] == [50, 100, 200]  # by step; records without train_val left out
    assert curve[0]["minutes"] is None and curve[1]["minutes"] == 4.1  # session 1: as recorded
    assert abs(curve[2]["minutes"] - (4.0 + 5.1)) < 1e-9  # session 2: after the 4.0 minutes of session 1
    assert [p["train_val_top1"] for p in curve] == [0.5, 0.6, 0.7]
    assert training_minutes(stats) == 4.0 + 5.0


def test_knn_table_is_k_by_distance_without_top5_at_k1():
    res = {f"knn_d{p}_k{k}_top{t}": 0.5 + 0.01 * k + 0.1 * p + 0.001 * t
           for p in (1, 2) for k in (1, 5, 25) for t in (1, 5)}
    table, used = knn_table(res)
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert re.findall(r"<th>(.*?)</th>", rows[0]) == ["k", "D1 top-1", "D1 top-5", "D2 top-1", "D2 top-5"]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows[1:]]
    assert [c[0] for c in cells] == ["1", "5", "25"]
    assert cells[0] == ["1", "61.10%", "—", "71.10%", "—"]  # k=1: top-5 equals top-1, not repeated
    assert cells[2] == ["25", "85.10%", "85.50%", "95.10%", "95.50%"]
    assert "knn_d1_k1_top5" in used  # consumed: not listed again under "Other"


def _eval_json(run, step, **extra):
    res = {"checkpoint": str(run / "checkpoints" / f"ckpt-{step:08d}.pt"), "step": step, "split": "test",
           "linear_avepool_top1": 0.8818, "linear_avepool_lr": 0.01, "knn_d1_k1_top1": 0.5, "knn_d1_k1_top5": 0.5,
           "knn_d1_k25_top1": 0.8431, "fid": 26.33, "fid_samples": 2000, "rel_l1": 0.3488, "feature_dim": 32,
           "timings_s": {"linear": 3.0}, **extra}
    (run / "eval.json").write_text(json.dumps(res))


def test_report_summary_baselines_groups_and_stale_warning(tmp_path, train_tiny):
    run = tmp_path / "run"
    train_tiny(run)  # 4 steps: checkpoint ckpt-00000004.pt
    _eval_json(run, 4)
    (run / "baselines.json").write_text(json.dumps({"pixels": {"linear_avepool_top1": 0.8451},
                                                    "supervised": {"linear_avepool_top1": 0.9172}}))
    page = write_report(run).read_text()
    summary = page[page.index("<h2>Summary</h2>"): page.index("<h2>Evaluation")]
    assert "tiny / base" in summary and "4 iterations in" in summary and "digits" in summary
    assert "<th>this run</th><th>pixels</th><th>supervised</th>" in summary
    assert re.search(r"linear probe top-1 \(AvePool\)</td><td[^>]*>88\.18%</td><td[^>]*>84\.51%</td>"
                     r"<td[^>]*>91\.72%</td>", summary)
    assert "Warning" not in page
    body = page[page.index("<h2>Evaluation"):]
    for group in ("Representation (32-d AvePool feature)", "Generation", "Reconstruction"):
        assert f"<h3>{group}</h3>" in body
    assert "0.0100" not in page and ">0.01<" in body
    assert body.count(">50.00%<") == 1  # knn_d1_k1_top5 (= top-1) is not shown a second time

    _eval_json(run, 2)  # evaluated an older checkpoint
    page = write_report(run).read_text()
    assert "Warning: eval.json is of step 2, older than the latest checkpoint (step 4)" in page

    _eval_json(run, 4)
    ckpt = run / "checkpoints" / "ckpt-00000004.pt"
    os.utime(run / "eval.json", (ckpt.stat().st_mtime - 60,) * 2)  # same step: an older file is no problem
    assert "Warning" not in write_report(run).read_text()
