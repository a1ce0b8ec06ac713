"""What a method is asked to act on: a module subtree of the U-Net and the role it plays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import nn

# Roles a method must understand:
#   block     the PEFT parameters of one BasicTransformerBlock (a mask bit is on)
#   unmasked  paper13 only: the block parameters the official code trains whatever the bit
#   extra     an `always` group (Transformer2DModel norm/proj, resnets, ...)
#   rest      the remainder of the U-Net outside the mask (paper13, or a method that trains it)
KINDS = ("block", "unmasked", "extra", "rest")


@dataclass(frozen=True)
class Target:
    path: str
    kind: str
    children: tuple[str, ...] | None = None  # only these children of `path` (attn32 halves)
    exclude: tuple[str, ...] = ()  # module paths (and everything under them) left out

    def roots(self) -> list[str]:
        if self.children is None:
            return [self.path]
        return [join(self.path, c) for c in self.children]

    def modules(
        self, root: nn.Module, stop: Callable[[nn.Module], bool] = lambda m: False
    ) -> Iterator[tuple[str, nn.Module]]:
        """(path, module) for every module in the target, pre-order; does not descend into
        modules for which `stop` is true (wrappers a method already installed)."""
        for start in self.roots():
            yield from _walk(get(root, start), start, self.exclude, stop)

    def parameters(self, root: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for path, module in self.modules(root):
            for name, p in module.named_parameters(recurse=False):
                yield join(path, name), p


def _walk(module, path, exclude, stop):
    if any(path == e or path.startswith(e + ".") for e in exclude):
        return
    yield path, module
    if stop(module):
        return
    for name, child in module.named_children():
        yield from _walk(child, join(path, name), exclude, stop)


def join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get(root, parent), name, new)
