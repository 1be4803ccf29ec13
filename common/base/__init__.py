"""Process-level helpers every layer may use: seeds and threads (runtime), classification metrics and plots
(metrics), where the project's files are (paths), which compute device runs the models (device). Imports
nothing from the project."""
