"""The configuration's one exception: a user mistake, reported in one line."""


class ConfigError(ValueError):
    """A user mistake in the configuration; its message is one line naming the problem and valid choices."""
