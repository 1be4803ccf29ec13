"""Process-level helpers every layer may use: seeds and threads (runtime), classification metrics and plots
(metrics), where the project's files are (paths). Imports nothing from the project."""
