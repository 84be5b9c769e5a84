"""Data layer: recordings, readers, the store, synthetic ground truth, samplers, datasets."""

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units, Window

__all__ = ["DataError", "Intervals", "Recording", "SpikeTrains", "TimeSeries", "Units", "Window"]
