"""kopf handlers, one module per concern; importing this package registers them.

kopf serves startup and cleanup, the probes and admission; the objects
themselves are watched by ``runtime.watch`` into ``runtime.store``, not by
kopf. ``admission`` is not imported here: kopf refuses to start with
validating handlers and no webhook server, so ``__main__`` registers it only
when a webhook is served (``--webhook`` local or service).
"""

from alert_contacts.handlers import startup

__all__ = ["startup"]
