"""A small Blackrock NEV 2.3 file (spike events only), built from neo's own record layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from neo.rawio.blackrockrawio import NEV_EXT_HEADER_TYPES_BY_SPEC, NEV_PACKET_DATA_TYPES_BY_SPEC

PACKET_BYTES = 104  # 8-byte packet header + 48 two-byte waveform samples
RESOLUTION = 30000


def write_nev(path: Path, spikes: dict[tuple[int, int], np.ndarray], *, labels: dict[int, str] | None = None) -> Path:
    """Write ``{(electrode, unit class): sample timestamps}`` as a NEV 2.3 file (unit class 0 = unsorted)."""
    electrodes = sorted({e for e, _ in spikes})
    ext = []
    wav = np.dtype(NEV_EXT_HEADER_TYPES_BY_SPEC["2.3"][b"NEUEVWAV"])
    lbl = np.dtype(NEV_EXT_HEADER_TYPES_BY_SPEC["2.3"][b"NEUEVLBL"])
    for e in electrodes:
        record = np.zeros(1, wav)
        units = max(u for el, u in spikes if el == e)
        record[0] = (b"NEUEVWAV", e, 1, e, 250, 0, 0, -500, units, 2, 48, b"")
        ext.append(record.tobytes())
        if labels and e in labels:
            label = np.zeros(1, lbl)
            label[0] = (b"NEUEVLBL", e, labels[e].encode(), b"")
            ext.append(label.tobytes())
    header = np.zeros(1, [
        ("file_type_id", "S8"), ("ver_major", "uint8"), ("ver_minor", "uint8"), ("additionnal_flags", "uint16"),
        ("bytes_in_headers", "uint32"), ("bytes_in_data_packets", "uint32"), ("timestamp_resolution", "uint32"),
        ("sample_resolution", "uint32"), ("time_origin", "uint16", 8), ("application_to_create_file", "S32"),
        ("comment_field", "S256"), ("nb_ext_headers", "uint32"),
    ])
    header[0] = (b"NEURALEV", 2, 3, 1, header.itemsize + 32 * len(ext), PACKET_BYTES, RESOLUTION, RESOLUTION,
                 [2020, 1, 3, 1, 12, 0, 0, 0], b"spikefm test", b"", len(ext))
    packet = np.dtype(NEV_PACKET_DATA_TYPES_BY_SPEC["2.3"]["Spikes"](PACKET_BYTES))
    rows = [(t, e, u) for (e, u), times in spikes.items() for t in times]
    rows.sort()
    data = np.zeros(len(rows), packet)
    for i, (t, e, u) in enumerate(rows):
        data[i]["timestamp"], data[i]["packet_id"], data[i]["unit_class_nb"] = t, e, u
    with open(path, "wb") as handle:
        handle.write(header.tobytes() + b"".join(ext) + data.tobytes())
    return path
