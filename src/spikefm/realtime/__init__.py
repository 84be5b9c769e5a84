"""Real-time decoding with a fixed-size state per stream (POSSM): ``StreamingDecoder``."""

from spikefm.realtime.stream import StreamingDecoder

__all__ = ["StreamingDecoder"]
