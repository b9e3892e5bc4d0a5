"""Errors that reach the user as one clear message (problem and fix), not a traceback."""


class UserError(Exception):
    """Bad input: a config value, a file, an action. The CLI prints it and exits with status 2."""


def exit_on_user_error(entry_point):
    """For CLI entry points only: a UserError prints one line and exits with status 2, no traceback."""
    import functools
    import sys

    @functools.wraps(entry_point)
    def wrapper(*args, **kwargs):
        try:
            return entry_point(*args, **kwargs)
        except UserError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            sys.exit(2)
    return wrapper
