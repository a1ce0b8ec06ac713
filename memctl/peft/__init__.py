"""Parameter-efficient fine-tuning of U-Net blocks selected by a binary mask.

adapter = apply(unet, "svdiff", bits, space="blocks16", always=("t2d_proj_norm",))
optimizer = torch.optim.AdamW(adapter.param_groups(lr=1e-3))
...
adapter.merge().save_pretrained(out)   # plain diffusers weights
"""

from memctl.peft import methods as _methods  # noqa: F401  (registers every method)
from memctl.peft._adapter import Adapter, apply, block_names, num_bits
from memctl.peft._blocks import ALWAYS
from memctl.peft._export import load_adapter, save_adapter
from memctl.peft._method import METHODS
from memctl.peft._spaces import SPACES
from memctl.peft.mask import MaskSpec, parse_bits

__all__ = [
    "ALWAYS",
    "METHODS",
    "SPACES",
    "Adapter",
    "MaskSpec",
    "apply",
    "block_names",
    "load_adapter",
    "num_bits",
    "parse_bits",
    "save_adapter",
]
