"""No personal data in the operator's log at INFO and above."""

from __future__ import annotations

import re

from tests.e2e.harness import (
    Cluster,
    Operator,
    refusal,
    unique_email,
    unique_mobile,
    wait_for_condition,
)


def test_accepted_and_refused_values_stay_out_of_the_log(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    start = operator.log_path.stat().st_size
    email, (digits, e164) = unique_email("private"), unique_mobile()
    cluster.create("Contact", namespace, "owner", {"email": email, "mobile": digits})
    wait_for_condition(cluster, "Contact", namespace, "owner", "Ready", "True")
    code, _ = refusal(lambda: cluster.create(
        "Contact", namespace, "copy", {"email": email.upper()}))
    assert code == 409
    bad = unique_email("broken").replace("@", "@@")
    code, _ = refusal(lambda: cluster.create("Contact", namespace, "bad", {"email": bad}))
    assert code == 422
    # An edit refused for a value another contact holds (the message names it).
    taken = unique_email("taken")
    cluster.create("Contact", namespace, "younger", {"email": taken})
    wait_for_condition(cluster, "Contact", namespace, "younger", "Ready", "True")
    code, _ = refusal(lambda: cluster.patch_spec("Contact", namespace, "owner",
                                                 {"email": taken}))
    assert code == 409

    with operator.log_path.open(errors="replace") as log:
        log.seek(start)
        lines = [line for line in log if re.search(r"\[(INFO|WARNING|ERROR|CRITICAL) *\]", line)]
    assert any("refused a Contact" in line for line in lines)  # the refusals were logged...
    for value in (email, bad, taken, digits, e164):  # ...without the values
        assert not [line for line in lines if value.lower() in line.lower()], value
