"""The one error type of the generator."""


class CodegenError(Exception):
    """A schema or a generated module breaks a pipeline rule; the message says which and why."""
