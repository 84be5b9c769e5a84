"""Data layer: recordings, readers, synthetic ground truth, samplers."""

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units, Window

__all__ = ["DataError", "Intervals", "Recording", "SpikeTrains", "TimeSeries", "Units", "Window"]
