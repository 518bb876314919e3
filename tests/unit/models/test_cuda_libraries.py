"""Finding CUDA 12's cuBLAS before a GPU worker loads its model (the loader is a stand-in: this
machine has no GPU; the error and the search order are what is tested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.cuda_libraries import CUBLAS_LIBRARIES, WHEEL_FOLDER, CudaLibraryMissing, load_cuda_libraries


def loader(loadable: set[str], calls: list[str]):  # type: ignore[no-untyped-def]
    def load(name: str) -> object:
        calls.append(name)
        if name not in loadable:
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    return load


def test_libraries_on_the_loaders_path_are_loaded_by_name() -> None:
    calls: list[str] = []
    loaded = load_cuda_libraries([], loader(set(CUBLAS_LIBRARIES), calls))
    assert loaded == list(CUBLAS_LIBRARIES) == calls


def test_the_nvidia_wheel_is_loaded_by_path_when_the_loader_finds_nothing(tmp_path: Path) -> None:
    folder = tmp_path / WHEEL_FOLDER
    folder.mkdir(parents=True)
    paths = [str(folder / name) for name in CUBLAS_LIBRARIES]
    for path in paths:
        Path(path).write_bytes(b"")
    calls: list[str] = []

    loaded = load_cuda_libraries([str(tmp_path / "elsewhere"), str(tmp_path)], loader(set(paths), calls))

    assert loaded == paths
    assert calls == [CUBLAS_LIBRARIES[0], paths[0], CUBLAS_LIBRARIES[1], paths[1]]


def test_a_missing_library_is_named_with_the_way_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(CudaLibraryMissing) as caught:
        load_cuda_libraries([str(tmp_path)], loader({"libcublasLt.so.12"}, []))
    message = str(caught.value)
    assert "libcublas.so.12" in message and "cannot open shared object file" in message
    assert "nvidia-cublas-cu12" in message and "worker-gpu" in message
