"""Data pipeline: image sources by name, transforms to [-1, 1], training streams and evaluation batches.

Public contract (other packages code against these names):
- ``open_source(name, data_dir, split)`` -> ``ImageSource`` of uint8 [C, H, W] images and int labels;
  ``open_split(cfg, split)`` the same for a run's configuration;
- ``TrainStream`` yields (x, x_e, y) for one rank, endlessly and resumably (``build_stream(cfg)`` for a run);
- ``eval_batches`` / ``load_eval_tensors`` give centred ``eval_transform``-ed images in order.
"""

from bigbigan.data.base import ImageSource, TensorSource
from bigbigan.data.errors import DataError
from bigbigan.data.folder import FolderSource
from bigbigan.data.shards import ShardSource
from bigbigan.data.sources import DEFAULT_DIRS, SOURCES, SPLITS, open_source, open_split
from bigbigan.data.stream import TrainStream, build_stream, eval_batches, load_eval_tensors
from bigbigan.data.transforms import AUGMENTS, CROPS, eval_transform, match_channels, to_unit_range

__all__ = [
    "AUGMENTS",
    "CROPS",
    "DEFAULT_DIRS",
    "SOURCES",
    "SPLITS",
    "DataError",
    "FolderSource",
    "ImageSource",
    "ShardSource",
    "TensorSource",
    "TrainStream",
    "build_stream",
    "eval_batches",
    "eval_transform",
    "load_eval_tensors",
    "match_channels",
    "open_source",
    "open_split",
    "to_unit_range",
]
