"""`bigbigan export | encode | sample | reconstruct | neighbours` end to end on a tiny run."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import bigbigan
from bigbigan.checkpoint import list_checkpoints, load_file
from bigbigan.cli import main
from bigbigan.config import from_dict, save_yaml
from bigbigan.files import atomic_save

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two class folders of small images of mixed sizes and modes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for cls, mode in (("cats", "RGB"), ("dogs", "L")):
        (root / cls).mkdir()
        for i in range(3):
            shape = (20 + i, 30) if mode == "L" else (24, 18 + i, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    return root


def test_export_writes_the_hugging_face_layout(exported, capsys):
    meta = json.loads((exported / "config.json").read_text())
    assert meta["format"] == "bigbigan-export" and meta["model_type"] == "bigbigan"
    assert meta["config"]["scale"] == "tiny" and meta["step"] == 2
    with safe_open(str(exported / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert any(k.startswith("G.") for k in keys) and any(k.startswith("E.") for k in keys)
    assert any(k.endswith("running_mean") for k in keys)  # buffers (BN statistics) included
    assert {"features.mean", "features.std"} <= keys


@pytest.mark.parametrize("ext", [".npy", ".safetensors", ".csv"])
def test_encode_a_folder_to_each_format(exported, folder, tmp_path, ext, capsys):
    out = tmp_path / f"feats{ext}"
    # --device cpu: the features are compared with bigbigan.load(...) on the CPU (a GPU's convolutions round
    # differently); this test is of the file formats
    assert main(["encode", str(exported), "--images", str(folder), "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    files = sorted(str(p) for p in folder.rglob("*.png"))
    want = bigbigan.load(exported).encode(files)
    names_want = [f"{c}/{i}.png" for c in ("cats", "dogs") for i in range(3)]
    if ext == ".npy":
        a = np.load(out)  # a structured array: no pickle needed
        feats, labels, names = torch.from_numpy(a["features"]), a["label"].tolist(), a["file"].tolist()
    elif ext == ".safetensors":
        with safe_open(str(out), framework="pt") as f:
            feats, labels = f.get_tensor("features"), f.get_tensor("labels").tolist()
            names = json.loads(f.metadata()["files"])
    else:
        rows = list(csv.reader(out.open()))
        assert rows[0][:3] == ["file", "label", "f0"]
        names, labels = [r[0] for r in rows[1:]], [int(r[1]) for r in rows[1:]]
        feats = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    assert names == names_want and labels == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(feats, want, rtol=1e-6, atol=1e-6)


def test_encode_a_data_set_split(tiny_run, tmp_path):
    out = tmp_path / "digits.safetensors"
    assert main(["encode", str(tiny_run), "--data", "digits", "--split", "test", "--feature", "z", "--out",
                 str(out), "--no-progress"]) == 0
    from bigbigan.data import open_source

    _, labels = open_source("digits", None, "test").as_tensors()
    with safe_open(str(out), framework="pt") as f:
        assert f.get_tensor("features").shape == (len(labels), 16)
        assert torch.equal(f.get_tensor("labels"), labels)


def test_sample_to_a_grid_and_to_a_folder(exported, tmp_path):
    assert main(["sample", str(exported), "-n", "6", "--nrow", "3", "--seed", "4", "--out",
                 str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (3 * 18 + 2, 2 * 18 + 2)  # 16 px images, 2 px padding
    assert main(["sample", str(exported), "-n", "6", "--seed", "4", "--out", str(tmp_path / "d")]) == 0
    pngs = sorted((tmp_path / "d").glob("sample-*.png"))
    assert len(pngs) == 6
    want = bigbigan.load(exported).sample(6, seed=4, as_uint8=True)
    assert np.array_equal(np.asarray(Image.open(pngs[2])), want[2, 0].numpy())


def test_reconstruct_grid_has_inputs_above_outputs(exported, folder, tmp_path):
    files = sorted(str(p) for p in folder.rglob("*.png"))[:4]
    assert main(["reconstruct", str(exported), *files, "--out", str(tmp_path / "r.png"), "--no-progress"]) == 0
    model = bigbigan.load(exported)
    grid = np.asarray(Image.open(tmp_path / "r.png"))
    assert grid.shape[:2] == (2 * 18 + 2, 4 * 18 + 2)
    top = torch.round((model.preprocess(files[:1], resolution=16)[0, 0] + 1) * 127.5).to(torch.uint8)
    bottom = model.reconstruct(files[:1], as_uint8=True)[0, 0]
    assert np.array_equal(grid[2:18, 2:18, 0], top.numpy())
    assert np.array_equal(grid[20:36, 2:18, 0], bottom.numpy())


def test_neighbours_finds_the_query_itself_first(exported, folder, tmp_path, capsys):
    query = folder / "dogs" / "1.png"
    assert main(["neighbours", str(exported), str(query), "--index", str(folder), "-k", "3", "--out",
                 str(tmp_path / "n.png"), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(query)
    assert lines[1].split() == ["1", "D1=0.0000", str(query)]
    assert len([x for x in lines if "D1=" in x]) == 3
    assert (tmp_path / "n.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["encode", "MODEL", "--images", "IMAGES", "--out", "f.txt"], "unknown format"),
    (["encode", "MODEL", "--images", "nowhere", "--out", "f.npy"], "is not a directory"),
    (["reconstruct", "MODEL", "missing.png", "--out", "r.png"], "does not exist"),
    (["sample", "no-such-model", "--out", "s.png"], "not a file, a directory or the name of a shipped model"),
    (["sample", "MODEL", "-n", "0", "--out", "s.png"], "-n must be at least 1"),
])
def test_user_errors_are_one_line(exported, folder, tmp_path, capsys, argv, message):
    argv = [str(exported) if a == "MODEL" else str(folder) if a == "IMAGES" else a for a in argv]
    argv = [str(tmp_path / a) if a.endswith((".txt", ".npy", ".png")) and a != "missing.png" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bigbigan: error:") and message in err and "\n" not in err


def test_export_without_the_training_data_says_what_to_do(tiny_run, tmp_path, capsys):
    """A run whose folder data has moved: export refuses in one line naming the ways out, which work."""
    run = tmp_path / "moved"
    shutil.copytree(tiny_run, run)
    _, path = list_checkpoints(run)[-1]
    state = load_file(path)
    state["config"]["data"].update(source="folder", data_dir=str(tmp_path / "gone"))
    atomic_save(state, path)
    save_yaml(from_dict(state["config"]), run / "config.yaml")  # the run's own record moves with it
    assert main(["export", str(run), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--stats-images 0" in err and "--data-dir" in err and "--standing-stats-batches 0" in err
    assert "\n" not in err.strip()
    assert main(["export", str(run), "--out", str(tmp_path / "y"), "--stats-images", "0",
                 "--standing-stats-batches", "0"]) == 0
