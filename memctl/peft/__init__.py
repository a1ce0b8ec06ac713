"""Parameter-efficient fine-tuning of U-Net blocks selected by a binary mask.

    adapter = apply(unet, "svdiff", bits, space="blocks16", always=("t2d_proj_norm",))
    optimizer = torch.optim.AdamW(adapter.param_groups(lr=1e-3))
    ...
    adapter.merge().save_pretrained(out)  # plain diffusers weights

Semantics (spaces are described in _spaces):
- A block is the BasicTransformerBlock(s) of one Transformer2DModel. Bit k = every trainable
  parameter the method has in block k; a 0 bit leaves that block bitwise unchanged.
- Outside the blocks everything is frozen, except the `always` groups (ALWAYS), which get
  the method's own treatment: svdiff shifts their singular values, difffit trains their
  biases and norms, lora adds LoRA to their Linear/Conv2d layers, attention trains them fully.
- `full` honours the bits for the blocks and always trains everything else: all ones is
  plain full fine-tuning. `freeze` trains nothing.
- `paper13` reproduces the official code instead: a 0 bit removes only what its name
  filter removes, and the remainder of the U-Net trains whatever the mask.
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
