"""Secrets that DingTalk bots reference: a bot waits (SecretNotFound) until its Secret exists.

Of Opaque Secrets only values that could be a webhook URL or a signing secret
are indexed, of other Secrets only their type (see ``secret_data``): other
workloads' passwords never sit in the operator's memory. Watching Secrets cluster-wide
needs list/watch on them (the chart's ClusterRole says why).
"""

from __future__ import annotations

from typing import Any

import kopf

from alert_contacts.domain.records import secret_data


@kopf.index("", "v1", "secrets")
async def secrets_index(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[tuple[str, str], dict[str, str]]:
    return {(namespace, name): secret_data(body)}


@kopf.on.event("", "v1", "secrets")
async def secret_changed(
    memo: kopf.Memo, namespace: str, bots_index: kopf.Index[Any, Any], **_: Any
) -> None:
    # Only namespaces with bots matter; a pass that changes nothing writes nothing.
    if any(ref.namespace == namespace for ref in bots_index):
        memo.reconciler.poke()
