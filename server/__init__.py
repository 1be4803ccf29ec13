"""FedLanHAR server package."""
