"""Races: concurrent claims of one email settle on the earliest claimant, deleting
the owner promotes the next one, and an edit never takes a key from the object
holding it — reconcile is the authority, admission only the fast path (two
concurrent requests can both pass it).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from tests.e2e.harness import (
    Cluster,
    Operator,
    condition,
    create_many,
    order_key,
    ready_reason,
    refusal,
    unique_email,
    wait_for_condition,
    wait_until,
)

CLAIMANTS = 20


def spelling(email: str, i: int) -> str:
    """The same address written differently: case does not make it another one."""
    return email.upper() if i % 3 == 1 else email.title() if i % 3 == 2 else email


def settled_on_earliest(
    cluster: Cluster, namespace: str, names: set[str], email: str
) -> dict[str, Any] | None:
    """The owner when exactly the earliest of ``names`` is Ready and every other one
    is a DuplicateEmail naming it, Stalled; None while that is not (yet) so."""
    objects = [o for o in cluster.list("Contact", namespace) if o["metadata"]["name"] in names]
    if len(objects) != len(names):
        return None
    owner, *others = sorted(objects, key=order_key)
    if ready_reason(owner) != ("True", "Accepted"):
        return None
    taken = f"email {email} is already used by Contact {namespace}/{owner['metadata']['name']}"
    for other in others:
        ready, stalled = condition(other, "Ready"), condition(other, "Stalled")
        if ready_reason(other) != ("False", "DuplicateEmail") or ready is None:
            return None
        if ready["message"] != taken or (stalled or {}).get("status") != "True":
            return None
    return owner


def test_concurrent_creates_of_one_email_leave_only_the_earliest_ready(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    email = unique_email("race")
    # One client per thread, all released at once, as twenty users would be.
    clients = [Cluster(cluster.kubeconfig,
                       kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
               for _ in range(CLAIMANTS)]
    start = threading.Barrier(CLAIMANTS)

    def claim(i: int) -> dict[str, Any] | ApiException:
        start.wait(timeout=30)
        try:
            return clients[i].create("Contact", namespace, f"c{i:02d}",
                                     {"email": spelling(email, i)})
        except ApiException as e:
            return e

    try:
        with ThreadPoolExecutor(max_workers=CLAIMANTS) as pool:
            results = list(pool.map(claim, range(CLAIMANTS)))
    finally:
        for client in clients:
            client.api.close()
    created = {r["metadata"]["name"] for r in results if isinstance(r, dict)}
    refused = [r for r in results if isinstance(r, ApiException)]
    print(f"\n{len(created)} of {CLAIMANTS} concurrent creates admitted, {len(refused)} refused")
    assert created, "every create was refused"
    # Admission refuses what the operator has already seen, naming an admitted claimant.
    for denied in refused:
        assert denied.status == 409, denied.body
        assert any(f"email {email} is already used by Contact {namespace}/{name}"
                   in denied.body for name in created), denied.body

    owner = wait_until(
        f"exactly the earliest of {sorted(created)} to be Ready, the others DuplicateEmail",
        lambda: settled_on_earliest(cluster, namespace, created, email), timeout=15,
    )
    assert owner["status"]["normalized"] == {"email": email}


def test_deleting_the_owner_promotes_exactly_the_next_claimant(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email = unique_email("chain")
    names = {f"c{i:02d}" for i in range(CLAIMANTS + 1)}
    # Without the admission webhook every duplicate is created, so the whole
    # outcome is the reconciler's: that is the path races end up on. One
    # operator at a time: the session operator steps aside meanwhile.
    operator.stop()
    reconciler_only = Operator(cluster, tmp_path / "operator.log", args=["--webhook=none"])
    try:
        reconciler_only.start()
        results = create_many(cluster, [
            ("Contact", namespace, name, {"email": spelling(email, i)}, {})
            for i, name in enumerate(sorted(names))
        ], workers=CLAIMANTS)
        assert all(isinstance(r, dict) for r in results), [
            r for r in results if not isinstance(r, dict)]
        wait_until("the earliest claimant to own the email",
                   lambda: settled_on_earliest(cluster, namespace, names, email), timeout=15)
    finally:
        reconciler_only.stop()
        operator.start()

    # The session operator (webhook and all) takes over and agrees; then each
    # owner in turn is deleted and the next claimant must be promoted.
    owner = wait_until("the restarted operator to agree",
                       lambda: settled_on_earliest(cluster, namespace, names, email))
    # A correctness deadline for a loaded machine; `make bench` measures the latency.
    for _ in range(CLAIMANTS):
        name = owner["metadata"]["name"]
        cluster.delete("Contact", namespace, name)
        names.discard(name)
        owner = wait_until(
            f"the next claimant after {name} to be promoted",
            lambda: settled_on_earliest(cluster, namespace, names, email), timeout=60,
        )
    assert len(names) == 1


def test_an_old_contact_edited_onto_a_younger_ones_email_never_takes_it(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    email = unique_email("held")
    cluster.create("Contact", namespace, "old", {"email": unique_email("old")})
    wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "True")
    cluster.create("Contact", namespace, "young", {"email": email})
    wait_for_condition(cluster, "Contact", namespace, "young", "Ready", "True")

    # Admission refuses the edit, naming the holder.
    status, message = refusal(
        lambda: cluster.patch_spec("Contact", namespace, "old", {"email": email.upper()}))
    assert status == 409, message
    assert f"email {email} is already used by Contact {namespace}/young" in message

    # Past admission (a race, or no webhook), the reconciler keeps the email with
    # its holder: the edited contact is the duplicate.
    operator.stop()
    reconciler_only = Operator(cluster, tmp_path / "operator.log", args=["--webhook=none"])
    try:
        reconciler_only.start()
        cluster.patch_spec("Contact", namespace, "old", {"email": email})
        old = wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "False",
                                 reason="DuplicateEmail")
        assert (condition(old, "Ready") or {})["message"] == (
            f"email {email} is already used by Contact {namespace}/young")
        young = cluster.get("Contact", namespace, "young")
        assert ready_reason(young) == ("True", "Accepted"), young
        claims = {c["key"]: c for c in young["status"]["claims"]}
        assert claims["email"]["value"] == email
        since = [datetime.fromisoformat(c["since"])
                 for c in (claims["email"], old["status"]["claims"][0])]
        assert since[0] < since[1]  # the edit's claim counts from the edit
        # The holder deleted, the edited contact is next in line and takes the email.
        cluster.delete("Contact", namespace, "young")
        wait_for_condition(cluster, "Contact", namespace, "old", "Ready", "True")
    finally:
        reconciler_only.stop()
        operator.start()
