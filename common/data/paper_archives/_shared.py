"""What the readers of the LanHAR paper's archives share beyond common.data.archives: checked number and csv
parsing, and finding the archive's folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from common.data.errors import DataError

# Folders that archive tools add beside the data (macOS resource forks in the MotionSense zip, for one).
_IGNORED_FOLDERS = {"__MACOSX"}


def parse_number(text: str, where: str, field: str, allow_nan: bool = False) -> float:
    """``text`` as a float; a DataError names ``where`` (file, line) and ``field`` otherwise.

    ``allow_nan``: "NaN" is a valid value (PAMAP2 marks missing samples so); inf never is.
    """
    try:
        value = float(text)
    except ValueError as error:
        raise DataError(f"{where}: field {field!r} = {text.strip()!r} is not a number") from error
    if np.isinf(value) or (np.isnan(value) and not allow_nan):
        raise DataError(f"{where}: field {field!r} = {text.strip()!r} is not a finite number")
    return value


def csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """("<path>, line <n>", {column: field}) for each data row of a comma-separated file with a header row.

    The header must name every `required` column (quotes around names are ignored); every row must have as
    many fields as the header; blank lines are skipped. Errors name the file, the line and what is wrong.
    """
    with open(path, encoding="utf-8") as handle:
        header = [field.strip().strip('"') for field in handle.readline().rstrip("\r\n").split(",")]
        missing = [column for column in required if column not in header]
        if missing:
            raise DataError(f"{path}, line 1: header lacks column(s) {missing}; expected {list(required)}")
        for line_number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(",")
            where = f"{path}, line {line_number}"
            if len(fields) != len(header):
                raise DataError(f"{where}: expected {len(header)} comma-separated fields, got {len(fields)}")
            yield where, dict(zip(header, fields, strict=True))


def find_folder(directory: Path, accepts: Callable[[Path], bool], depth: int = 2) -> Path | None:
    """The first of ``directory`` and its sub-folders (down to ``depth`` levels) that ``accepts``.

    Archives extract with or without a top folder ("PAMAP2_Dataset/Protocol", "Activity recognition exp/"),
    so the readers look a couple of levels down instead of insisting on one layout.
    """
    level = [directory] if directory.is_dir() else []
    for _ in range(depth + 1):
        for folder in level:
            if accepts(folder):
                return folder
        level = [
            child
            for folder in level
            for child in sorted(folder.iterdir())
            if child.is_dir() and child.name not in _IGNORED_FOLDERS
        ]
    return None
