"""The worker sizes numpy's and OpenMP's thread pools before they load."""

from __future__ import annotations

import subprocess
import sys

import pytest

from commands.cli import NUMERIC_THREAD_VARIABLES, pin_numeric_threads

pytestmark = pytest.mark.unit


def test_unset_pools_get_the_model_threads_and_a_users_choice_stays() -> None:
    environ = {"OPENBLAS_NUM_THREADS": "3"}
    pin_numeric_threads(environ, cpu_threads=2)
    assert environ == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "3", "MKL_NUM_THREADS": "2"}


def test_zero_model_threads_still_pins_one_thread_per_pool() -> None:
    environ: dict[str, str] = {}
    pin_numeric_threads(environ, cpu_threads=0)
    assert set(environ.values()) == {"1"} and set(environ) == set(NUMERIC_THREAD_VARIABLES)


def test_the_entry_point_loads_no_numeric_library_before_it_pins_them() -> None:
    # The pools read their variables once, at load: pinning after numpy is imported does nothing.
    code = "import sys, commands.cli; print(sorted({'numpy', 'ctranslate2'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
