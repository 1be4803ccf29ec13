"""The one error type of the data layer: bad input data (files, fields, shapes, units)."""


class DataError(ValueError):
    """Bad input data; the message always names the file/source and the field, shape or unit."""
