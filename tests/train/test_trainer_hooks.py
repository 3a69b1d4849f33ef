"""The trainer's loop: maintenance sections (log, pictures, checkpoint, evaluation) run at their steps and in
order, with the hooks the caller passes; signals stop it through a small context manager."""

import os
import signal

import torch

from bigbigan.checkpoint import list_checkpoints
from bigbigan.data import build_stream
from bigbigan.presets import resolve
from bigbigan.train.loop import Trainer
from bigbigan.train.signals import stop_signals


def test_hooks_run_at_their_steps_after_the_checkpoint_of_that_step(tmp_path):
    cfg = resolve("tiny", "base", ["train.steps=4", "train.log_every=1", "train.image_every=2", "train.eval_every=2",
                                   "train.ckpt_every=3", "data.train_val_size=100"])
    events = []

    def pictures(trainer):
        events.append(("pictures", trainer.step))

    def evaluate(trainer):
        # The checkpoint of this step is on disk before evaluation runs (evaluation may mark it the best).
        assert list_checkpoints(tmp_path)[-1][0] == trainer.step
        events.append(("evaluation", trainer.step))

    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), progress=False, pictures=pictures,
                      evaluate=evaluate)
    assert [s.name for s in trainer.maintenance()] == ["log", "pictures", "checkpoint", "evaluation"]
    trainer.fit()
    # pictures every 2 iterations and once more at the end; evaluation every 2
    assert events == [("pictures", 2), ("evaluation", 2), ("pictures", 4), ("evaluation", 4), ("pictures", 4)]
    # checkpoints at 2 (for the evaluation), 3 (ckpt_every) and 4 (evaluation, then the end of the run)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3, 4]
    assert len((tmp_path / "stats.jsonl").read_text().splitlines()) == 4


def test_without_hooks_the_trainer_writes_no_pictures(tmp_path):
    cfg = resolve("tiny", "base", ["train.steps=1", "train.image_every=1", "data.train_val_size=100"])
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), progress=False)
    assert [s.name for s in trainer.maintenance()] == ["log", "checkpoint"]
    trainer.fit()
    assert not (tmp_path / "images").exists()


def test_a_signal_inside_the_block_is_a_stop_request_and_the_old_handler_returns():
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals() as stop:
        assert not stop and stop.name is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_peek_images_leaves_the_stream_where_it_was(tmp_path):
    cfg = resolve("tiny", "base", ["data.train_val_size=100"])
    a, b = (Trainer(cfg, tmp_path / n, stream=build_stream(cfg), progress=False) for n in ("a", "b"))
    n = cfg.optim.batch_size  # tiny: 8
    peeked = a.peek_images(3 * n + 2)  # more than a batch: the batches that follow, each once
    first = a.next_batch()
    assert torch.equal(first.x, b.next_batch().x)  # the stream is where it was
    assert peeked.shape[0] == 3 * n + 2
    chunks = peeked[: 3 * n].split(n)
    assert torch.equal(chunks[0], first.x_e)
    second = a.next_batch()
    assert torch.equal(chunks[1], second.x_e)  # the stream's second batch, not the first again
    assert not torch.equal(chunks[0], chunks[1])
