"""Build DeepSpeed's JIT ops once: `python -m memctl.train.prebuild [--fused-adam]`.

Every `deepspeed.initialize` on a CPU first loads the `deepspeed_shm_comm` op; building it
takes ~90 s, so CI runs this before the tests and every later run (tests included, as long
as they see the same $TORCH_EXTENSIONS_DIR) just loads the cached library.
"""

from __future__ import annotations

import argparse
import logging
import time

from memctl.train.extensions import use_extensions_dir


def _builders(fused_adam: bool) -> list[str]:
    from deepspeed.accelerator import get_accelerator

    names = ["ShareMemCommBuilder"] if get_accelerator().device_name() == "cpu" else []
    if fused_adam:  # only for configs that turn torch_adam off
        names.append("FusedAdamBuilder")
    return names


def prebuild(fused_adam: bool = False) -> list[str]:
    """Builds (or loads from cache) the ops this machine's DeepSpeed runs need; returns them."""
    path = use_extensions_dir()  # before importing deepspeed: torch reads it at build time
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    built = []
    for name in _builders(fused_adam):
        builder = get_accelerator().create_op_builder(name)
        if builder is None or not deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
            print(f"{name}: not needed or not compatible here, skipped")
            continue
        start = time.perf_counter()
        builder.load(verbose=False)
        seconds = time.perf_counter() - start
        print(f"{builder.NAME}: ready in {seconds:.1f} s ({path or 'default dir'})")
        built.append(builder.NAME)
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fused-adam", action="store_true",
                        help="also build FusedAdam (unused with torch_adam, the default)")
    prebuild(parser.parse_args(argv).fused_adam)


if __name__ == "__main__":
    main()
