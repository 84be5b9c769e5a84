"""MATLAB ``.mat`` files: recognise them by content and read their variables into numpy.

Version 5/7 files (the default of MATLAB's ``save``) are read with :func:`scipy.io.loadmat`.
Version 7.3 files are HDF5 underneath; their numeric arrays are read with h5py and transposed
back to MATLAB's row/column order (HDF5 stores them column-major, reversed). Structs and cell
arrays in v7.3 files are HDF5 object references, which this reader refuses with a message
saying how to re-save the file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from spikefm.data.recording import DataError

__all__ = ["mat_version", "mat_classes", "read_mat"]

_HEADER = b"MATLAB "


def mat_version(path: Path) -> str | None:
    """``"5"`` or ``"7.3"`` for a MATLAB file (from its 128-byte text header), else None."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(128)
    if not head.startswith(_HEADER):
        return None
    return "7.3" if head.startswith(b"MATLAB 7.3") else "5"


def mat_classes(path: Path) -> dict[str, str]:
    """Variable name -> MATLAB class (``"double"``, ``"cell"``, ``"struct"``...) without reading the data."""
    if mat_version(path) == "7.3":
        with h5py.File(path, "r") as handle:
            return {
                name: str(node.attrs.get("MATLAB_class", b"?"), "ascii")
                for name, node in handle.items()
                if not name.startswith("#")
            }
    from scipy.io import whosmat

    try:
        return {name: kind for name, _, kind in whosmat(path)}
    except (ValueError, OSError, TypeError) as err:
        raise DataError(f"{path}: cannot read as a MATLAB v5 file ({err})") from err


def _read_v73(path: Path) -> dict[str, np.ndarray]:
    variables = {}
    with h5py.File(path, "r") as handle:
        for name, node in handle.items():
            if name.startswith("#"):
                continue  # MATLAB's internal reference storage
            if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "biuf":
                raise DataError(
                    f"{path}: field '{name}' is a MATLAB struct or cell array in a v7.3 (HDF5) file; "
                    "spikefm reads those only from v5/v7 files: re-save with save(..., '-v7')"
                )
            values = node[()]
            variables[name] = values.T if values.ndim >= 2 else values
    return variables


def read_mat(path: str | Path) -> dict[str, np.ndarray]:
    """All user variables of a ``.mat`` file, name -> array (MATLAB's bookkeeping keys dropped).

    Raises:
        DataError: the file is missing, not a MATLAB file, or unreadable.
    """
    path = Path(path)
    version = mat_version(path)
    if version is None:
        raise DataError(f"{path}: not a MATLAB .mat file (no 'MATLAB' text header)")
    if version == "7.3":
        return _read_v73(path)
    from scipy.io import loadmat

    try:
        variables = loadmat(path)
    except (ValueError, OSError, TypeError) as err:
        raise DataError(f"{path}: cannot read as a MATLAB v5 file ({err})") from err
    return {k: v for k, v in variables.items() if not k.startswith("__")}
