"""Reading the project's TOML files (label vocabulary, device types, settings) with errors that name them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from common.data.errors import DataError


def read_toml(path: str | Path, what: str, error: type[DataError] = DataError) -> dict[str, Any]:
    """The document at `path`; a missing file or invalid TOML raises `error` naming `what` and the path."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as missing:
        raise error(f"{what} {path} does not exist (file not found)") from missing
    except tomllib.TOMLDecodeError as invalid:
        raise error(f"{what} {path} is not valid TOML: {invalid}") from invalid
