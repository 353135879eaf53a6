"""kopf handlers, one module per concern; importing this package registers them all."""

from alert_contacts.handlers import admission, bots, contacts, groups, secrets, startup

__all__ = ["admission", "bots", "contacts", "groups", "secrets", "startup"]
