"""FedLanHAR common package."""
