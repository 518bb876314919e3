"""The CUDA libraries CTranslate2's PyPI wheel opens by name on first use, found before the model
loads: without them a GPU worker loaded its model, reported ready, and crashed deep inside its
first window ("Library libcublas.so.12 is not found or cannot be loaded").

The wheel is built against CUDA 12: it opens `libcublas.so.12`, which a CUDA 12 system (the
`worker-gpu` image) has on the loader's path. On a host with another CUDA, NVIDIA's
`nvidia-cublas-cu12` wheel (`pip install 'streaming-whisper[worker,gpu]'`) puts the library under
site-packages; it is loaded from there by path, and CTranslate2's later open by name finds it
already loaded."""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

CUBLAS_LIBRARIES = ("libcublasLt.so.12", "libcublas.so.12")
"""In load order: cuBLAS needs cuBLASLt."""
WHEEL_FOLDER = Path("nvidia") / "cublas" / "lib"
"""Where the `nvidia-cublas-cu12` wheel puts them, under a site-packages folder."""


class CudaLibraryMissing(RuntimeError):
    """A CUDA library CTranslate2 needs cannot be loaded; the message says which and how to get it."""


def load_cuda_libraries(
    search_roots: Iterable[str] | None = None,
    load: Callable[[str], object] = lambda name: ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL),
) -> list[str]:
    """Load cuBLAS 12 from the loader's path, else from the NVIDIA wheel under `search_roots`
    (default: `sys.path`). Returns what was loaded (names or paths); raises CudaLibraryMissing."""
    roots = [Path(root) for root in (sys.path if search_roots is None else search_roots)]
    loaded = []
    for name in CUBLAS_LIBRARIES:
        in_wheels = [root / WHEEL_FOLDER / name for root in roots]
        reasons = []
        for candidate in [name, *(str(path) for path in in_wheels if path.is_file())]:
            try:
                load(candidate)
            except OSError as error:
                reasons.append(f"{candidate}: {error}")
                continue
            loaded.append(candidate)
            break
        else:
            raise CudaLibraryMissing(
                f"WHISPER_DEVICE=cuda needs {name} (CUDA 12's cuBLAS), which CTranslate2 opens, and it "
                "cannot be loaded: use a CUDA 12 system (the worker-gpu image) or install NVIDIA's wheel "
                "with pip install 'streaming-whisper[worker,gpu]' (nvidia-cublas-cu12). "
                f"Tried: {'; '.join(reasons)}"
            )
    logger.info("CUDA libraries: %s", ", ".join(loaded))
    return loaded
