"""FedLanHAR client package."""
