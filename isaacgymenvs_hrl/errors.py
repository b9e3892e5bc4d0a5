"""Errors that reach the user as one clear message (problem and fix), not a traceback."""


class UserError(Exception):
    """Bad input: a config value, a file, an action. The CLI prints it and exits with status 2."""
