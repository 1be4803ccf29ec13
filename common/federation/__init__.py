"""What the server and the clients of a federation share: the run config, the message records of each phase,
and which local data each client holds (partition). Imports every other layer of common/."""
