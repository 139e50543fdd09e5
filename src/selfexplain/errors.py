"""Exceptions a user can act on; each message names the file, key or column at fault."""


class SelfExplainError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ConfigError(SelfExplainError):
    """A config, catalog or template is invalid."""


class InputError(SelfExplainError):
    """An input file is missing, unreadable or lacks a column."""


class InferenceError(SelfExplainError):
    """Some requests failed for good; everything that succeeded is in the journal, so a rerun sends only the rest."""
