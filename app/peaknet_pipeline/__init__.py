"""peaknet: real-time Bragg-peak finding on Ray."""

__version__ = "0.1.0"
