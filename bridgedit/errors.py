"""Errors a user can cause and fix whose natural modules import torch: defined here, where nothing heavy is imported,
so that the CLI catches them (one line, no traceback) without loading torch to do so. `ConfigError` (config.py) and
`MediaError` (media.py) stay with their checks, whose modules are light too."""


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it is loaded into; the message lists what differs."""


class ExtractorUnavailable(RuntimeError):
    """A metric's backbone cannot be loaded here; the message says what is missing and how to get it."""
