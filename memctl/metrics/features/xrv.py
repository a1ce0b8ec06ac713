"""torchxrayvision DenseNet-121 (densenet121-res224-mimic_ch): the paper's FID/AMD features."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor, resize, to_channels

WEIGHTS_FILE = "mimic_ch-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
WEIGHTS_URL = f"https://github.com/mlmed/torchxrayvision/releases/download/v1/{WEIGHTS_FILE}"
# Where torchxrayvision itself caches it, so a cache filled by xrv is found without config.
DEFAULT_WEIGHTS = Path("~/.torchxrayvision/models_data") / WEIGHTS_FILE


def _load_densenet(path: Path) -> torch.nn.Module:
    try:
        xrv = importlib.import_module("torchxrayvision")
    except ImportError as exc:
        raise UserError(
            "feature extractor 'xrv-densenet121' needs the torchxrayvision package: "
            "pip install torchxrayvision (or use an image that has it)"
        ) from exc
    # The release file is a pickled torchxrayvision model, hence weights_only=False; it is
    # a file the user placed locally on purpose.
    saved = torch.load(path, map_location="cpu", weights_only=False)
    state = saved.state_dict() if isinstance(saved, torch.nn.Module) else saved
    num_classes = state["classifier.weight"].shape[0]
    model = xrv.models.DenseNet(weights=None, num_classes=num_classes)
    model.load_state_dict(state, strict=False)
    missing = [k for k in model.state_dict() if k.startswith("features.") and k not in state]
    if missing:
        raise UserError(f"{path}: not a DenseNet-121 checkpoint (missing {missing[0]})")
    return model


class XrvDenseNet121(FeatureExtractor):
    """1024-d ReLU + global-average-pooled norm5 features (torchxrayvision's features2).

    Preprocessing follows torchxrayvision: grey (channel mean), 224 x 224, [0, 1] mapped to
    [-1024, 1024].
    """

    name = "xrv-densenet121"
    dim = 1024
    default_weights = DEFAULT_WEIGHTS
    weights_url = WEIGHTS_URL

    def _load(self, weights: str | Path | None) -> None:
        self.features = _load_densenet(Path(weights)).features.eval().to(self.device)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = resize(to_channels(images, 1), 224) * 2048.0 - 1024.0
        out = F.relu(self.features(x))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


EXTRACTOR = XrvDenseNet121
