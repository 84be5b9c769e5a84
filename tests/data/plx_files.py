"""A small Plexon ``.plx`` file (spike blocks only), built from neo's own record layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from neo.rawio.plexonrawio import DataBlockHeader, DspChannelHeader, GlobalHeader

RATE = 40000
WORDS = 32  # waveform samples per spike


def write_plx(path: Path, spikes: dict[tuple[int, int], np.ndarray]) -> Path:
    """Write ``{(channel, unit): timestamps in ticks of 1 / RATE}`` as a version-106 PLX file (unit 0 = unsorted)."""
    channels = sorted({c for c, _ in spikes})
    header = np.zeros(1, GlobalHeader)
    header[0]["MagicNumber"], header[0]["Version"], header[0]["ADFrequency"] = 0x58454C50, 106, RATE
    header[0]["NumDSPChannels"], header[0]["NumPointsWave"], header[0]["NumPointsPreThr"] = len(channels), WORDS, 8
    header[0]["Year"], header[0]["Month"], header[0]["Day"] = 2020, 1, 1
    header[0]["WaveformFreq"], header[0]["BitsPerSpikeSample"], header[0]["SpikeMaxMagnitudeMV"] = RATE, 12, 3000
    header[0]["SpikePreAmpGain"] = 1000
    dsp = np.zeros(len(channels), DspChannelHeader)
    for i, channel in enumerate(channels):
        dsp[i]["Name"], dsp[i]["SIGName"] = f"sig{channel:03d}".encode(), f"sig{channel:03d}".encode()
        dsp[i]["Channel"], dsp[i]["Gain"], dsp[i]["SIG"] = channel, 1, channel
        dsp[i]["NUnits"] = max(u for c, u in spikes if c == channel)
    rows = sorted((int(t), c, u) for (c, u), times in spikes.items() for t in times)
    block = np.zeros(1, DataBlockHeader)
    blocks = []
    for t, c, u in rows:
        block[0] = (1, t >> 32, t & 0xFFFFFFFF, c, u, 1, WORDS)
        blocks.append(block.tobytes() + np.zeros(WORDS, np.int16).tobytes())
    with open(path, "wb") as handle:
        handle.write(header.tobytes() + dsp.tobytes() + b"".join(blocks))
    return path
