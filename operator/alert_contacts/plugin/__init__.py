"""``kubectl contacts``: search, list, delete and validate alert contacts.

Installed as the console script ``kubectl-contacts``, which kubectl runs as
``kubectl contacts`` when it is on PATH. One module per concern: ``search``
(matching), ``render`` (table/json/yaml), ``validate`` (offline checks with the
webhook's own validation functions), ``cluster`` (the few API calls) and
``cli`` (arguments, confirmation, exit codes).
"""

from alert_contacts.plugin.cli import main

__all__ = ["main"]
