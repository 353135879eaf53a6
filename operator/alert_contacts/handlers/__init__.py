"""kopf handlers, one module per concern; importing this package registers them.

``admission`` is not imported here: kopf refuses to start with validating
handlers and no webhook server, so ``__main__`` registers it only when a
webhook is served (``--webhook`` local or service).
"""

from alert_contacts.handlers import bots, contacts, groups, secrets, sendtest, startup

__all__ = ["bots", "contacts", "groups", "secrets", "sendtest", "startup"]
