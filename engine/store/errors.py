"""The store's errors, shared by every backend: a bad argument or unknown schema, a newer schema, a database
that cannot be written right now."""
from __future__ import annotations


class StoreError(Exception):
    """Something the store cannot do: a bad argument, a schema it does not know."""


class SchemaVersionError(StoreError):
    """The database was written by a newer herald than this one: refusing to touch it."""


class LeaseLost(StoreError):
    """A dispatcher's claim on a notification ran out and was taken back: it must not send it."""


class NotSendable(LeaseLost):
    """At the start of a send its outcome was found withdrawn, amended or not approved: the notification was
    cancelled instead (in the same transaction), and nothing may be sent."""


class StoreUnavailable(StoreError):
    """The database could not be written now (locked, unreachable, disk full, I/O error): try again later."""
