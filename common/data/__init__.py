"""IMU data: the WindowSet container and its npz files (windows, loading; layout in docs/data.md), readers of
the original public archives, the label vocabulary, simulated device types, the synthetic generator and the
signal analysis of a window (features). Imports only common.base."""
