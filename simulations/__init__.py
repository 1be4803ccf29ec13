"""FedLanHAR simulations package."""
