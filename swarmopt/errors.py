"""The error a user's input raises (imported by the loader, the API and the plug-in loader)."""


class InputError(ValueError):
    """A user's file or argument is invalid; ``str(err)`` is the whole message
    (one line naming the file or argument, the field and the allowed values)."""
