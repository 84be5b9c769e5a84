"""Shared helpers for the data-layer tests."""

from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest


def _write_v73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file: HDF5 after a 512-byte text header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, values in variables.items():
            node = handle.create_dataset(name, data=np.asarray(values).T)
            node.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by spikefm tests".ljust(128))
    return path


@pytest.fixture
def write_v73() -> Callable[[Path, dict[str, np.ndarray]], Path]:
    """Writer of MATLAB v7.3 (HDF5) files, as MATLAB's ``save -v7.3`` lays them out."""
    return _write_v73
