"""The one exception type the data pipeline raises for problems the user can fix."""


class DataError(ValueError):
    """A user-facing data problem; ``str()`` is one clear line naming the problem (path, source, choices).

    Raised for missing or malformed files, unknown source or split names and impossible batch layouts, so
    the CLI can print it without a traceback (STYLE.md habit 5); programming errors keep other types.
    """
