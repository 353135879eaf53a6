"""What `kubectl get` shows and what `--field-selector` finds, on the real API server."""

from __future__ import annotations

from tests.e2e.harness import (
    DINGTALK_URL,
    Cluster,
    Operator,
    manifest,
    put_secret,
    unique_email,
    unique_mobile,
    unique_token,
    wait_for_condition,
    wait_until,
)


def table(cluster: Cluster, *args: str) -> list[dict[str, str]]:
    """``kubectl get`` output as rows keyed by column header (cells split on 3+ spaces)."""
    lines = cluster.kubectl("get", *args).stdout.splitlines()
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")
              and (i < 2 or header[i - 2:i] == "  ")]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [{name: line[a:b].strip() for name, a, b in
             zip(names, starts, [*starts[1:], None], strict=True)} for line in lines[1:]]


def test_contacts_show_normalised_keys_and_field_selectors_find_them(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    national, e164 = unique_mobile()
    email = unique_email("Selected")
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "Contact", namespace, "alice", {"mobile": spaced, "email": email, "displayName": ""}))
    wait_for_condition(cluster, "Contact", namespace, "alice", "Ready", "True")

    (row,) = table(cluster, "contacts", "-n", namespace)
    assert (row["MOBILE"], row["EMAIL"]) == (e164, email.lower())
    assert row["DISPLAY NAME"] == "alice"  # an empty displayName shows as the name
    (wide,) = table(cluster, "contacts", "-n", namespace, "-o", "wide")
    assert (wide["MOBILE AS WRITTEN"], wide["EMAIL AS WRITTEN"]) == (spaced, email)

    for selector in (f"status.normalized.mobile={e164}",
                     f"status.normalized.email={email.lower()}",
                     f"spec.email={email}"):
        found = cluster.kubectl("get", "contacts", "-A", "--field-selector", selector,
                                "-o", "name").stdout.split()
        assert found == ["contact.alerting.contacts.dev/alice"], selector
    none = cluster.kubectl("get", "contacts", "-A", "--field-selector",
                           f"status.normalized.email={email}", "-o", "name").stdout
    assert email != email.lower() and none == ""  # the normalised value is lower-case


def test_wide_output_names_the_owner_of_a_duplicate_key(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    token = unique_token()
    # One bot waits for its Secret, another claims the token inline; when the Secret
    # appears with the same token, one of them is the owner and the other a duplicate.
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "DingTalkBot", namespace, "from-secret",
        {"webhook": {"secretRef": {"name": "oncall", "key": "url"}},
         "signingSecretRef": {"name": "oncall", "key": "sign"}}))
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "DingTalkBot", namespace, "inline", {"webhook": {"url": DINGTALK_URL + token}}))
    wait_for_condition(cluster, "DingTalkBot", namespace, "inline", "Ready", "True")
    put_secret(cluster, namespace, "oncall",
               {"url": DINGTALK_URL + token, "sign": "SEC" + "a1b2c3d4" * 8})

    def settled() -> list[dict[str, str]] | None:
        rows = table(cluster, "dingtalkbots", "-n", namespace, "-o", "wide")
        reasons = sorted(r["REASON"] for r in rows)
        return rows if reasons == ["Accepted", "DuplicateWebhook"] else None

    rows = {r["NAME"]: r for r in wait_until("one owner and one duplicate", settled)}
    assert rows["from-secret"]["URL SECRET"] == "oncall"
    assert rows["from-secret"]["SIGNING SECRET"] == "oncall"
    assert rows["inline"]["URL SECRET"] == rows["inline"]["SIGNING SECRET"] == ""  # inline
    loser = next(r for r in rows.values() if r["REASON"] == "DuplicateWebhook")
    winner = next(r for r in rows.values() if r["REASON"] == "Accepted")
    assert loser["DUPLICATE OF"] == f"DingTalkBot {namespace}/{winner['NAME']}"
    assert winner["DUPLICATE OF"] == ""


def test_groups_show_why_they_are_not_ready(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest(
        "ContactGroup", namespace, "waiting", {"contacts": ["nobody"]}))
    cluster.kubectl("apply", "-f", "-", input=manifest("ContactGroup", namespace, "empty", {}))
    wait_for_condition(cluster, "ContactGroup", namespace, "waiting", "Ready", "False")
    wait_for_condition(cluster, "ContactGroup", namespace, "empty", "Ready", "False")
    rows = {r["NAME"]: r for r in table(cluster, "contactgroups", "-n", namespace)}
    assert rows["waiting"]["REASON"] == "MembersMissing"
    assert rows["empty"]["REASON"] == "NoMembers"
