"""The language-model interpretation service: configuration, request scheduling and retries, backends,
answer parsing, the interpreters built on them, and a local llama-cpp server."""
