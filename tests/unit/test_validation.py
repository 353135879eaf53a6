"""The one validation path: shapes, mobile/email normalisation, webhook URLs, secrets."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

import phonenumbers
import pytest
from confusable_homoglyphs import categories as unicode_scripts
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from alert_contacts.domain.records import SECRET_TYPE_KEY, secret_data, secret_value
from alert_contacts.domain.types import Claim, NotOpaque, Reason
from alert_contacts.domain.validation import (
    SecretResolver,
    check_webhook_url,
    display_name,
    mixed_scripts,
    normalize_email,
    redact,
    redact_url,
    scrub_personal_data,
    unsafe_characters,
    validate_bot,
    validate_contact,
    validate_group,
)
from alert_contacts.settings import Settings

CN = Settings()
TOKEN = "0123456789abcdef" * 4  # DingTalk shape: 64 hex characters
URL = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
SIGNING = "SEC" + "a1b2c3d4" * 8
NEITHER = "a contact needs spec.mobile, spec.email, or both"
FULLWIDTH_DIGITS = {ord("0") + d: 0xFF10 + d for d in range(10)}  # as typed with a CJK IME


# ---------------------------------------------------------------- mobile

MOBILES_OK = [
    ("+86 138 0013 8000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("(+86)13800138000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("13800138000", "+8613800138000"),
    ("+8613800138000", "+8613800138000"),
    ("+86-138-0013-8000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("  13800138000  ", "+8613800138000"),
    ("+86" + "13800138000".translate(FULLWIDTH_DIGITS), "+8613800138000"),
    ("+86 199 1234 5678", "+8619912345678"),
    ("+1 650 253 0000", "+16502530000"),  # US: FIXED_LINE_OR_MOBILE
    ("+1 (201) 555-0123", "+12015550123"),
    ("+44 7911 123456", "+447911123456"),
    ("+44 (0)7911 123456", "+447911123456"),
    ("+852 9123 4567", "+85291234567"),
    ("+49 1512 3456789", "+4915123456789"),
    ("+65 9123 4567", "+6591234567"),
]

MOBILES_BAD = [
    ("010-12345678", "landline (fixed-line) number, not a mobile number"),
    ("+86 10 1234 5678", "landline (fixed-line) number, not a mobile number"),
    ("+44 20 7946 0958", "landline (fixed-line) number, not a mobile number"),
    ("+1 800 555 0199", "toll-free number, not a mobile number"),
    ("+86 400 810 8888", "shared-cost number, not a mobile number"),
    ("07911 123456", "not a valid phone number in region CN"),  # UK national, default CN
    ("abc", "contains letters"),
    ("1-800-FLOWERS", "contains letters"),  # keypad letters are not digits here
    ("+86 138 0013 8000 ext. 12", "contains letters"),
    ("13800138000#12", "cannot have an extension"),
    ("123", "too short"),
    ("+8613800138000123", "too long"),
    ("+86 1380013800", "not a valid phone number for +86 (CN)"),
    ("+999 1234567", "the country code is not valid"),
    ("0086", "too short after the international prefix"),
    ("---", "this is not a phone number"),
]


@pytest.mark.parametrize(("text", "e164"), MOBILES_OK)
def test_mobile_is_normalised_to_e164(text: str, e164: str) -> None:
    verdict = validate_contact({"mobile": text}, CN)
    assert verdict.valid, verdict.message
    assert verdict.reason is Reason.ACCEPTED
    assert verdict.claims == (Claim("mobile", e164),)
    assert verdict.normalized == {"mobile": e164}


@pytest.mark.parametrize(("text", "why"), MOBILES_BAD)
def test_mobile_refused_names_field_value_and_reason(text: str, why: str) -> None:
    verdict = validate_contact({"mobile": text}, CN)
    assert not verdict.valid
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.claims == ()
    assert len(verdict.problems) == 1
    assert verdict.message.startswith(f"spec.mobile {text!r}: ")
    assert why in verdict.message


def test_landline_message_says_not_a_mobile_number() -> None:
    verdict = validate_contact({"mobile": "010-12345678"}, CN)
    assert verdict.message == (
        "spec.mobile '010-12345678': this is a landline (fixed-line) number, not a mobile"
        " number; alerts need an SMS-capable mobile"
    )


@pytest.mark.parametrize(
    ("region", "text", "e164"),
    [
        ("US", "(650) 253-0000", "+16502530000"),
        ("GB", "07911 123456", "+447911123456"),
        ("US", "+86 138 0013 8000", "+8613800138000"),  # an explicit code wins
    ],
)
def test_default_region_reads_numbers_without_country_code(
    region: str, text: str, e164: str
) -> None:
    verdict = validate_contact({"mobile": text}, Settings(default_region=region))
    assert verdict.normalized == {"mobile": e164}


def test_formatting_variants_claim_the_same_key() -> None:
    claims = {validate_contact({"mobile": m}, CN).claims for m, _ in MOBILES_OK[:9]}
    assert claims == {(Claim("mobile", "+8613800138000"),)}


def test_mobile_longer_than_32_characters_is_a_shape_error() -> None:
    text = "1" * 33
    verdict = validate_contact({"mobile": text}, CN)
    assert verdict.message == f"spec.mobile {text!r}: is 33 characters long, at most 32 are allowed"


def test_unquoted_yaml_number_is_refused_with_a_hint() -> None:
    verdict = validate_contact({"mobile": 13800138000}, CN)
    assert verdict.message == "spec.mobile '13800138000': must be a string (quote it in YAML)"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=32))
def test_any_mobile_text_gives_a_verdict_and_normalisation_is_idempotent(text: str) -> None:
    verdict = validate_contact({"mobile": text, "email": "a@example.com"}, CN)
    if not text.strip():
        assert not verdict.valid  # blank beside an email, or control characters
        assert verdict.message.startswith("spec.mobile ")
    elif verdict.valid:
        e164 = verdict.normalized["mobile"]
        assert e164.startswith("+") and e164[1:].isdigit()
        again = validate_contact({"mobile": e164, "email": "a@example.com"}, CN)
        assert again.normalized["mobile"] == e164
    else:
        assert verdict.message.startswith("spec.mobile ")


# ---------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),  # whole address case-insensitive
        ("ALICE.WANG+oncall@EXAMPLE.com", "alice.wang+oncall@example.com"),
        (" alice@example.com ", "alice@example.com"),
        ("alice@xn--bcher-kva.de", "alice@bücher.de"),  # IDNA and Unicode spellings agree
        ("ALICE@BÜCHER.DE", "alice@bücher.de"),
        ("Élise@Example.fr", "élise@example.fr"),
        ("e\u0301lise@example.fr", "élise@example.fr"),  # NFC
        ("用户@例子.广告", "用户@例子.广告"),
    ],
)
def test_email_is_normalised(text: str, normal: str) -> None:
    verdict = validate_contact({"email": text}, CN)
    assert verdict.valid, verdict.message
    assert verdict.claims == (Claim("email", normal),)
    assert verdict.normalized == {"email": normal}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("alice@@x", "The part after the @-sign contains invalid characters: '@'."),
        ("alice", "An email address must have an @-sign."),
        ("a@localhost", "It should have a period."),
        ("a@test.test", "special-use or reserved name"),
        ("Alice <a@x.com>", "display name and angle brackets"),
        ("a..b@x.com", "cannot have two periods in a row"),
        ("a b@x.com", "invalid characters before the @-sign"),
    ],
)
def test_email_refused_names_field_value_and_reason(text: str, why: str) -> None:
    verdict = validate_contact({"email": text}, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message.startswith(f"spec.email {text!r}: ")
    assert why in verdict.message


def test_contact_with_both_claims_both() -> None:
    verdict = validate_contact(
        {"displayName": "Alice Wang", "mobile": "+86 138 0013 8000", "email": "Alice@x.com"}, CN
    )
    assert verdict.claims == (Claim("mobile", "+8613800138000"), Claim("email", "alice@x.com"))
    assert verdict.normalized == {"mobile": "+8613800138000", "email": "alice@x.com"}


def test_both_bad_reports_both() -> None:
    verdict = validate_contact({"mobile": "abc", "email": "x"}, CN)
    assert [p.field for p in verdict.problems] == ["spec.mobile", "spec.email"]


# ---------------------------------------------------------------- contact shape


@pytest.mark.parametrize(
    "spec",
    [{}, {"displayName": "Alice"}, {"mobile": "", "email": ""}, {"mobile": "  "}],
)
def test_contact_needs_mobile_or_email(spec: Mapping[str, str]) -> None:
    verdict = validate_contact(spec, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message == f"spec: {NEITHER}"


@pytest.mark.parametrize(("spec", "field"), [
    ({"mobile": "", "email": "a@example.com"}, "mobile"),
    ({"mobile": "  ", "email": "a@example.com"}, "mobile"),
    ({"mobile": "13800138000", "email": ""}, "email"),
    ({"mobile": "13800138000", "email": "\u3000"}, "email"),  # an ideographic space
])
def test_a_blank_mobile_or_email_beside_a_valid_one_is_refused(
    spec: Mapping[str, str], field: str
) -> None:
    # A templated manifest that rendered an empty value must not lose an alert channel silently.
    verdict = validate_contact(spec, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    other = "email" if field == "mobile" else "mobile"
    assert verdict.message == (
        f"spec.{field} {spec[field]!r}: is empty: fill it in, or remove the field if this contact"
        f" has no {field} (spec.{other} alone is enough)"
    )


def test_display_name_at_most_64_characters() -> None:
    assert validate_contact({"displayName": "x" * 64, "email": "a@example.com"}, CN).valid
    verdict = validate_contact({"displayName": "x" * 65, "email": "a@example.com"}, CN)
    assert verdict.message == (
        f"spec.displayName {'x' * 65!r}: is 65 characters long, at most 64 are allowed"
    )


def test_unknown_field_is_refused_by_name() -> None:
    verdict = validate_contact({"email": "a@example.com", "phone": "138"}, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message == (
        "spec.phone '138': unknown field (remove it, or check its spelling and case)"
    )


def test_system_notifications_must_be_a_boolean() -> None:
    verdict = validate_contact({"email": "a@example.com", "systemNotifications": "yes"}, CN)
    assert verdict.message == "spec.systemNotifications 'yes': must be true or false"


def test_shape_error_on_mobile_is_not_reported_as_neither() -> None:
    verdict = validate_contact({"mobile": ["138"]}, CN)
    assert [p.field for p in verdict.problems] == ["spec.mobile"]


# ---------------------------------------------------------------- webhook URLs


def no_secrets(name: str, key: str) -> str | None:
    return None


def secrets(data: Mapping[tuple[str, str], str]) -> SecretResolver:
    def resolve(name: str, key: str) -> str | None:
        return data.get((name, key))

    return resolve


def test_inline_webhook_claims_its_token() -> None:
    verdict = validate_bot({"webhook": {"url": URL}}, no_secrets, CN)
    assert verdict.valid, verdict.message
    assert verdict.claims == (Claim("webhook", TOKEN),)
    assert verdict.normalized == {"webhookHost": "oapi.dingtalk.com"}


@pytest.mark.parametrize(
    "url",
    [
        URL,
        f"https://OAPI.DingTalk.COM/robot/send?access_token={TOKEN}",  # host is case-insensitive
        f"HTTPS://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        f"https://oapi.dingtalk.com:443/robot/send?access_token={TOKEN}",  # the https default
    ],
)
def test_acceptable_webhook_urls(url: str) -> None:
    assert check_webhook_url(url, CN.dingtalk_hosts) == ("oapi.dingtalk.com", TOKEN)


HOSTILE = [
    (f"http://oapi.dingtalk.com/robot/send?access_token={TOKEN}", "must use https, not 'http'"),
    (f"ftp://oapi.dingtalk.com/robot/send?access_token={TOKEN}", "must use https"),
    (f"https://example.com/robot/send?access_token={TOKEN}", "'example.com' is not an allowed"),
    (
        f"https://oapi.dingtalk.com.evil.com/robot/send?access_token={TOKEN}",
        "'oapi.dingtalk.com.evil.com' is not an allowed DingTalk host (oapi.dingtalk.com)",
    ),
    (f"https://evil-oapi.dingtalk.com/robot/send?access_token={TOKEN}", "is not an allowed"),
    (f"https://oapi.dingtalk.com./robot/send?access_token={TOKEN}", "is not an allowed"),
    (
        f"https://oapi.dingtalk.com@evil.com/robot/send?access_token={TOKEN}",
        "must not contain a user name or password",
    ),
    (
        f"https://u:p@oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        "must not contain a user name or password",
    ),
    (f"https://oapi.dingtalk.com\\@evil.com/robot/send?access_token={TOKEN}", "backslashes"),
    (f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}\n", "printable ASCII"),
    (f"https://203.0.113.7/robot/send?access_token={TOKEN}", "not an IP address '203.0.113.7'"),
    (f"https://[2001:db8::1]/robot/send?access_token={TOKEN}", "not an IP address"),
    (f"https://oapi.dingtalk.com:8443/robot/send?access_token={TOKEN}", "must not name port 8443"),
    (f"https://oapi.dingtalk.com:/robot/send?access_token={TOKEN}", "host part of the URL"),
    (f"https://oapi.dingtalk.com:99999/robot/send?access_token={TOKEN}", "cannot be parsed"),
    (f"https:oapi.dingtalk.com/robot/send?access_token={TOKEN}", "has no host"),
    (f"https://oapi.dingtalk.com/robot/sendx?access_token={TOKEN}", "path must be exactly"),
    (f"https://oapi.dingtalk.com/robot/send/?access_token={TOKEN}", "path must be exactly"),
    (f"https://oapi.dingtalk.com/ROBOT/send?access_token={TOKEN}", "path must be exactly"),
    (f"https://oapi.dingtalk.com/robot/send;x?access_token={TOKEN}", "path must be exactly"),
    ("https://oapi.dingtalk.com/robot/send", "no access_token query parameter"),
    ("https://oapi.dingtalk.com/robot/send?access_token=", "the access_token is empty"),
    ("https://oapi.dingtalk.com/robot/send?access_token", "the access_token is empty"),
    ("https://oapi.dingtalk.com/robot/send?access_token=short", "16 to 128 letters"),
    (f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}%00", "16 to 128 letters"),
    (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}&access_token={TOKEN}",
        "given more than once",
    ),
    (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}&redirect=x",
        "unexpected query parameter(s) 'redirect'",
    ),
    (f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}#x", "#fragment"),
    (f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}#", "#fragment"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_hostile_inline_url_is_refused_without_leaking_the_token(url: str, why: str) -> None:
    verdict = validate_bot({"webhook": {"url": url}}, no_secrets, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.claims == ()
    assert verdict.message.startswith("spec.webhook.url '")
    assert why in verdict.message
    assert TOKEN not in verdict.message
    assert TOKEN[:5] not in verdict.message


# Surrounding whitespace in a Secret is forgiven (`echo url > file` adds a newline).
@pytest.mark.parametrize(("url", "why"), [(u, w) for u, w in HOSTILE if u == u.strip()])
def test_hostile_url_from_secret_names_the_secret_not_the_value(url: str, why: str) -> None:
    spec = {"webhook": {"secretRef": {"name": "oncall-bot", "key": "url"}}}
    verdict = validate_bot(spec, secrets({("oncall-bot", "url"): url}), CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message.startswith(
        "spec.webhook.secretRef: the webhook URL in Secret 'oncall-bot' key 'url': "
    )
    assert why in verdict.message
    assert TOKEN[:5] not in verdict.message
    assert "dingtalk.com/robot" not in verdict.message


def test_other_allowed_hosts_come_from_settings() -> None:
    custom = Settings(dingtalk_hosts=("oapi.dingtalk.example",))
    url = f"https://oapi.dingtalk.example/robot/send?access_token={TOKEN}"
    assert validate_bot({"webhook": {"url": url}}, no_secrets, custom).valid
    assert not validate_bot({"webhook": {"url": URL}}, no_secrets, custom).valid


def test_webhook_from_secret_claims_its_token_and_tolerates_a_trailing_newline() -> None:
    spec = {
        "webhook": {"secretRef": {"name": "oncall-bot", "key": "url"}},
        "signingSecretRef": {"name": "oncall-bot", "key": "secret"},
    }
    resolve = secrets({("oncall-bot", "url"): URL + "\n", ("oncall-bot", "secret"): SIGNING})
    verdict = validate_bot(spec, resolve, CN)
    assert verdict.valid, verdict.message
    assert verdict.claims == (Claim("webhook", TOKEN),)
    assert verdict.normalized == {"webhookHost": "oapi.dingtalk.com"}


def test_missing_secret_is_secret_not_found() -> None:
    spec = {"webhook": {"secretRef": {"name": "oncall-bot", "key": "url"}}}
    verdict = validate_bot(spec, no_secrets, CN)
    assert verdict.reason is Reason.SECRET_NOT_FOUND
    assert verdict.claims == ()
    assert verdict.message == (
        "spec.webhook.secretRef: Secret 'oncall-bot' key 'url' not found in this namespace"
        " (create the Secret or add the key)"
    )


def test_missing_signing_secret_key_is_secret_not_found() -> None:
    spec = {
        "webhook": {"url": URL},
        "signingSecretRef": {"name": "oncall-bot", "key": "secret"},
    }
    verdict = validate_bot(spec, secrets({("oncall-bot", "url"): URL}), CN)
    assert verdict.reason is Reason.SECRET_NOT_FOUND
    assert [p.field for p in verdict.problems] == ["spec.signingSecretRef"]
    assert "Secret 'oncall-bot' key 'secret' not found" in verdict.message


def test_invalid_spec_wins_over_a_missing_secret() -> None:
    # A missing Secret may still appear; an invalid URL needs an edit, so say that.
    spec = {
        "webhook": {"url": URL.replace("https", "http")},
        "signingSecretRef": {"name": "oncall-bot", "key": "secret"},
    }
    verdict = validate_bot(spec, no_secrets, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert [p.field for p in verdict.problems] == ["spec.webhook.url", "spec.signingSecretRef"]


@pytest.mark.parametrize(
    "secret", ["sec" + "a" * 64, "SEC", "SECshort", "SEC" + "a" * 40 + "!", "a" * 64]
)
def test_signing_secret_must_look_like_one_and_is_never_shown(secret: str) -> None:
    spec = {"webhook": {"url": URL}, "signingSecretRef": {"name": "bot", "key": "secret"}}
    verdict = validate_bot(spec, secrets({("bot", "secret"): secret}), CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message.startswith(
        "spec.signingSecretRef: the signing secret in Secret 'bot' key 'secret': must be 'SEC'"
    )
    assert secret not in verdict.message or secret == "SEC"


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        ({}, "spec.webhook: spec.webhook needs exactly one of url or secretRef"),
        (
            {"url": URL, "secretRef": {"name": "a", "key": "b"}},
            "spec.webhook: spec.webhook needs exactly one of url or secretRef",
        ),
        ({"secretRef": {"name": "a"}}, "spec.webhook.secretRef.key: is required"),
        (
            {"secretRef": {"name": "Bad_Name", "key": "url"}},
            "spec.webhook.secretRef.name 'Bad_Name': is not a valid object name",
        ),
        (
            {"secretRef": {"name": "a", "key": "a/b"}},
            "spec.webhook.secretRef.key 'a/b': is not a valid Secret key",
        ),
        ({"url": ""}, "spec.webhook.url '': must not be empty"),
        ({"URL": URL}, "spec.webhook.URL '"),
    ],
)
def test_bot_shape_errors(webhook: Mapping[str, object], message: str) -> None:
    verdict = validate_bot({"webhook": webhook}, no_secrets, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message.startswith(message)
    assert TOKEN[:5] not in verdict.message


def test_bot_needs_a_webhook() -> None:
    verdict = validate_bot({"displayName": "x"}, no_secrets, CN)
    assert verdict.message == "spec.webhook: is required"


def test_overlong_inline_url_is_refused_without_echoing_the_token() -> None:
    url = URL + "a" * 500
    verdict = validate_bot({"webhook": {"url": url}}, no_secrets, CN)
    assert "at most 512 are allowed" in verdict.message
    assert TOKEN[:5] not in verdict.message


# ---------------------------------------------------------------- groups


def test_group_shape() -> None:
    assert validate_group({}).valid
    verdict = validate_group({"displayName": "SRE", "contacts": ["alice"], "dingTalkBots": ["b"]})
    assert verdict.valid
    assert verdict.claims == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"contacts": ["alice", "alice"]}, "spec.contacts[1] 'alice': listed more than once"),
        ({"dingTalkBots": ["Bot_1"]}, "spec.dingTalkBots[0] 'Bot_1': is not a valid object name"),
        ({"contacts": [f"c{i}" for i in range(101)]}, "spec.contacts: has 101 items, at most 100"),
        ({"contacts": "alice"}, "spec.contacts 'alice': must be a list"),
        ({"members": ["alice"]}, "spec.members: unknown field"),
    ],
)
def test_group_refusals(spec: Mapping[str, object], message: str) -> None:
    verdict = validate_group(spec)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message.startswith(message)


# ---------------------------------------------------------------- redaction


def test_redact() -> None:
    assert redact("+8613800138000", "mobile") == "+86*******8000"
    assert redact("+447911123456", "mobile") == "+44******3456"
    assert redact("alice@example.com", "email") == "a***@example.com"
    assert redact(TOKEN, "token") == "0123…"
    assert redact(TOKEN, "webhook") == "0123…"
    assert redact("abc", "token") == "…"


def test_redact_url_hides_token_and_userinfo() -> None:
    assert redact_url(f"https://u:p@oapi.dingtalk.com/robot/send?access_token={TOKEN}") == (
        "https://***@oapi.dingtalk.com/robot/send?access_token=0123…"
    )


@pytest.mark.parametrize("spec", [None, [], "mobile: 138"])
def test_a_spec_that_is_not_an_object_is_refused_not_raised(spec: object) -> None:
    for verdict in (
        validate_contact(spec, CN),  # type: ignore[arg-type]
        validate_bot(spec, no_secrets, CN),  # type: ignore[arg-type]
        validate_group(spec),  # type: ignore[arg-type]
    ):
        assert verdict.reason is Reason.INVALID_SPEC
        assert verdict.message == "spec: must be an object"


# ---------------------------------------------------------------- credentials, any spelling

# The token in every place and spelling a pasted or hostile URL may carry it.
TOKEN_PLACES = [
    f"https://oapi.dingtalk.com/robot/send?token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?Access_Token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?ACCESS_TOKEN={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access%5Ftoken={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access_token%3D{TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?{TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?x=1;access_token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access_token=a&access_token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send#access_token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}#{TOKEN}",
    f"https://oapi.dingtalk.com/robot/send/{TOKEN}",
    f"https://{TOKEN}@oapi.dingtalk.com/robot/send",
    f"https://robot:{TOKEN}@oapi.dingtalk.com/robot/send",
    f"http://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
    f"https://example.com/robot/send?access_token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}&token={TOKEN}",
    f" https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
    f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}" + "&x=1" * 130,  # too long
]


@pytest.mark.parametrize("url", TOKEN_PLACES)
def test_the_token_never_reaches_a_message_whatever_the_parameter_is_called(url: str) -> None:
    verdict = validate_bot({"webhook": {"url": url}}, no_secrets, CN)
    assert not verdict.valid
    assert TOKEN[:5] not in verdict.message, verdict.message
    assert TOKEN[:5] not in redact_url(url)
    # Events and logs pass text through scrub_personal_data: a URL in free text too.
    assert TOKEN[:5] not in scrub_personal_data(f"webhook {url} is refused")


def test_redacting_a_url_keeps_what_helps_to_recognise_it() -> None:
    assert redact_url(f"https://oapi.dingtalk.com/robot/send?Access_Token={TOKEN}&x=1") == (
        "https://oapi.dingtalk.com/robot/send?Access_Token=0123…&x=…"
    )
    # Text that is not a URL stays as written.
    assert redact_url("Alice? On call (team-a), 24/7") == "Alice? On call (team-a), 24/7"


def test_a_long_query_parameter_name_is_not_echoed() -> None:
    # `?<token>` has the token as the parameter's *name*.
    assert check_webhook_url(f"https://oapi.dingtalk.com/robot/send?{TOKEN}",
                             ["oapi.dingtalk.com"]) == (
        "unexpected query parameter(s) (a long name); only access_token is allowed"
    )


# ---------------------------------------------------------------- mobile numbers in Events

SEPARATORS = ["\u00a0", "\u202f", "\u3000", "\u200b", "\u2060", "/", ".", "\uff0d", "\u2013", ""]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_mobile_numbers_are_scrubbed_whatever_separates_their_digits(separator: str) -> None:
    number = separator.join(["138", "0013", "8000"])
    for text in (f"call {number} now", f"call +86{separator}{number}"):
        scrubbed = scrub_personal_data(text)
        assert "0013" not in scrubbed and scrubbed.endswith(("8000", "8000 now")), scrubbed
    # And as a refusal's message shows the number (escaping invisible characters).
    message = validate_contact({"mobile": number + "9"}, CN).message
    assert "0013" in message
    assert "0013" not in scrub_personal_data(message), scrub_personal_data(message)


# ---------------------------------------------------------------- control and format characters

UNSAFE = [
    ("\x00", "U+0000"),
    ("\n", "U+000A"),
    ("\x1b", "U+001B"),
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("\u2028", "U+2028 LINE SEPARATOR"),
]


@pytest.mark.parametrize(("char", "named"), UNSAFE)
@pytest.mark.parametrize(
    ("field", "clean"),
    [("displayName", "Alice"), ("mobile", "13800138000"), ("email", "alice@example.com")],
)
def test_contact_text_with_control_or_format_characters_is_refused(
    field: str, clean: str, char: str, named: str
) -> None:
    value = clean[:2] + char + clean[2:]
    spec = {"email": "bob@example.com", field: value}
    verdict = validate_contact(spec, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message == (
        f"spec.{field} {value!r}: must not contain control or invisible formatting characters"
        f" (NUL, newlines, zero-width spaces, bidi overrides); found {named}"
    )
    assert char not in verdict.message  # shown escaped: the message cannot reverse a column


@given(st.text())
def test_unsafe_characters_are_exactly_the_unsafe_categories(text: str) -> None:
    # Also over plain ASCII, where a fast path skips the per-character lookup.
    expected = list(dict.fromkeys(c for c in text if unicodedata.category(c) in
                                  {"Cc", "Cf", "Zl", "Zp", "Cs"}))
    assert [d.split()[0] for d in unsafe_characters(text)] == [f"U+{ord(c):04X}"
                                                               for c in expected]


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_is_never_mixed_script(text: str) -> None:
    # The fast path for ASCII agrees with the script lookup it skips.
    scripts = set(unicode_scripts.unique_aliases(text)) - {"COMMON", "INHERITED"}
    assert scripts <= {"LATIN"}
    assert mixed_scripts(text) == []


@pytest.mark.parametrize(("char", "named"), UNSAFE)
def test_bot_and_group_display_names_refuse_control_characters(char: str, named: str) -> None:
    bot = validate_bot({"displayName": f"On{char}call", "webhook": {"url": URL}}, no_secrets, CN)
    group = validate_group({"displayName": f"SRE{char}"})
    for verdict in (bot, group):
        assert verdict.reason is Reason.INVALID_SPEC
        assert verdict.message.startswith("spec.displayName ")
        assert named in verdict.message


def test_ordinary_spaces_and_joiners_of_names_are_fine() -> None:
    assert validate_contact({"displayName": "Zoë\u00a0Wang 王", "email": "a@example.com"}, CN).valid
    assert validate_contact({"mobile": "138\u00a00013\u00a08000"}, CN).valid


# ---------------------------------------------------------------- email folding and look-alikes


def test_full_width_forms_fold_in_the_local_part_as_in_the_domain() -> None:
    full_width = "ａｌｉｃｅ@ｅｘａｍｐｌｅ.com"  # noqa: RUF001 - the point of the test
    verdict = validate_contact({"email": full_width}, CN)
    assert verdict.claims == (Claim("email", "alice@example.com"),)
    assert normalize_email("ALICE@example.com") == normalize_email(full_width)


@pytest.mark.parametrize(
    ("email", "part", "scripts"),
    [
        ("p\u0430ypal@example.com", "p\u0430ypal", "Cyrillic and Latin"),
        ("alice@p\u0430ypal.com", "p\u0430ypal", "Cyrillic and Latin"),
        ("alice@xn--pypal-4ve.com", "p\u0430ypal", "Cyrillic and Latin"),  # the same, in IDNA
        ("\u03bfpen@example.com", "\u03bfpen", "Greek and Latin"),
    ],
)
def test_mixed_script_look_alikes_are_refused(email: str, part: str, scripts: str) -> None:
    verdict = validate_contact({"email": email}, CN)
    assert verdict.reason is Reason.INVALID_SPEC
    assert verdict.message == (
        f"spec.email {email!r}: {part!r} mixes {scripts} letters, so it looks like another"
        " address (a look-alike); write each part of the address in one script"
    )


@pytest.mark.parametrize(
    "email",
    [
        "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",  # Cyrillic
        "\u738bwang2@example.com",  # Han with Latin, as Chinese names are written
        "\u3084\u307e\u3060taro@example.jp",  # kana with Latin
        "jos\u00e9.m\u00fcller@example.com",
    ],
)
def test_one_script_or_scripts_written_together_are_fine(email: str) -> None:
    assert validate_contact({"email": email}, CN).valid


# ---------------------------------------------------------------- the email fast path

# Addresses mostly well formed, with pieces that take each branch of the fast path
# and of the full one: special characters before the @, other characters after it,
# IDNA labels, look-alikes, lengths around the limits.
_PLAIN = st.sampled_from(["alice", "A.B", "x+y", "o'neil", "~_{|}", "Z9", "a" * 30])
_SPECIAL = st.sampled_from(['"', " ", "<", ">", "@", "(", "\\", ".", "..", "\u00e9", "e\u0301",
                            "\u0430", "\u738b", "\uff41", "\u0000", ""])
_GOOD_LABELS = st.sampled_from(["example", "EXAMPLE", "b\u00fccher", "xn--bcher-kva",
                                "\u4f8b\u5b50", "x" * 63, "mail-1"])
_BAD_LABELS = st.sampled_from(["xn--pypal-4ve", "p\u0430ypal", "-a", "a-", "x" * 64, "a_b", "[1",
                               "a b", "", "\u3002", "\uff0e"])
_TOP = st.sampled_from(["com", "cn", "\u5e7f\u544a", "test", "localhost", "c0m", "1"])


@st.composite
def _addresses(draw: st.DrawFn) -> str:
    local = "".join(draw(st.lists(st.one_of(_PLAIN, _PLAIN, _SPECIAL), min_size=1, max_size=4)))
    labels = draw(st.lists(st.one_of(_GOOD_LABELS, _GOOD_LABELS, _BAD_LABELS), max_size=3))
    at = draw(st.sampled_from(["@", "@", "@", "@@", "", "\uff20"]))
    return local + at + ".".join([*labels, draw(_TOP)])


@settings(max_examples=1500)
@given(st.one_of(_addresses(), st.text(max_size=40)))
def test_the_email_fast_path_agrees_with_the_full_validation(text: str) -> None:
    from alert_contacts.domain.validation import _normalize_email_fully

    folded = unicodedata.normalize("NFKC", text)
    assert normalize_email(text) == _normalize_email_fully(text, folded)


def test_the_email_length_limit_is_kept_on_the_fast_path() -> None:
    domain = ".".join(["x" * 63] * 3) + ".com"  # 195 characters
    fits, too_long = "a" * 58 + "@" + domain, "a" * 59 + "@" + domain
    assert normalize_email(fits) == fits
    refused = normalize_email(too_long)
    assert not isinstance(refused, str) and "too long" in refused.reason
    # In Unicode 250 octets, with the domain in IDNA ASCII ("xn--bcher-kva") 256.
    idna = "a" * 110 + "@" + ".".join(["x" * 63, "x" * 63, "b\u00fccher", "com"])
    refused = normalize_email(idna)
    assert not isinstance(refused, str) and "converted to IDNA ASCII" in refused.reason


# ---------------------------------------------------------------- Secrets of another type


def test_a_secret_of_another_type_is_kept_without_its_data() -> None:
    body = {"type": "kubernetes.io/tls", "data": {"tls.key": "c2VjcmV0", "url": "aHR0cHM6Ly94"}}
    assert secret_data(body) == {SECRET_TYPE_KEY: "kubernetes.io/tls"}
    assert secret_value(secret_data(body), "url") == NotOpaque("kubernetes.io/tls")
    assert secret_value(None, "url") is None
    assert secret_value(secret_data({"data": {}}), "url") is None


@pytest.mark.parametrize("field", ["webhook", "signingSecretRef"])
def test_a_bot_pointing_at_a_non_opaque_secret_is_told_its_type(field: str) -> None:
    ref = {"name": "oncall", "key": "url"}
    spec: dict[str, object] = {"webhook": {"url": URL}}
    if field == "webhook":
        spec = {"webhook": {"secretRef": ref}}
    else:
        spec["signingSecretRef"] = ref

    def resolve(name: str, key: str) -> NotOpaque:
        return NotOpaque("kubernetes.io/basic-auth")

    verdict = validate_bot(spec, resolve, CN)
    assert verdict.reason is Reason.SECRET_NOT_FOUND
    where = "spec.webhook.secretRef" if field == "webhook" else "spec.signingSecretRef"
    assert verdict.message == (
        f"{where}: Secret 'oncall' in this namespace has type 'kubernetes.io/basic-auth'; the"
        " operator reads webhook URLs and signing secrets only from Secrets of type 'Opaque'"
        " (create an Opaque Secret of that name instead)"
    )
    assert "not found" not in verdict.message


def test_display_name_defaults_to_the_object_name_when_absent_or_blank() -> None:
    assert display_name({"displayName": "Alice"}, "alice") == "Alice"
    assert display_name({"displayName": "  "}, "alice") == "alice"
    assert display_name({"displayName": ""}, "alice") == "alice"
    assert display_name({}, "alice") == "alice"


# ---------------------------------------------------------------- limits at their edges


@pytest.mark.parametrize(("length", "valid"), [(15, False), (16, True), (128, True), (129, False)])
def test_access_token_length_limits_at_their_edges(length: int, valid: bool) -> None:
    token = "a1_-" * 32 + "b"  # every allowed kind of character
    url = f"https://oapi.dingtalk.com/robot/send?access_token={token[:length]}"
    inline = validate_bot({"webhook": {"url": url}}, no_secrets, CN)
    held = validate_bot({"webhook": {"secretRef": {"name": "bot", "key": "url"}}},
                        secrets({("bot", "url"): url}), CN)
    for verdict in (inline, held):
        assert verdict.valid is valid, verdict.message
        if valid:
            assert verdict.claims == (Claim("webhook", token[:length]),)
        else:
            assert "the access_token must be 16 to 128 letters, digits, '-' or '_'" in (
                verdict.message)


@pytest.mark.parametrize(("length", "valid"), [(15, False), (16, True), (128, True), (129, False)])
def test_signing_secret_length_limits_at_their_edges(length: int, valid: bool) -> None:
    secret = "SEC" + ("a1B2" * 33)[:length]
    spec = {"webhook": {"url": URL}, "signingSecretRef": {"name": "bot", "key": "secret"}}
    verdict = validate_bot(spec, secrets({("bot", "secret"): secret}), CN)
    assert verdict.valid is valid, verdict.message
    if not valid:
        assert "must be 'SEC' followed by 16 to 128 letters and digits" in verdict.message


# ---------------------------------------------------------------- real numbers, every region


def _example_mobiles() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if number is not None and phonenumbers.is_valid_number(number):
            found.append((region, number))
    return found


EXAMPLE_MOBILES = _example_mobiles()
FORMATS = [PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.RFC3966]


def test_example_mobiles_cover_most_regions() -> None:
    assert len(EXAMPLE_MOBILES) > 200  # the property below sees the world, not a handful


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLE_MOBILES), st.sampled_from(FORMATS),
       st.sampled_from(["", " ", "-"]))
def test_real_mobiles_of_every_region_are_valid_and_normalisation_is_idempotent(
    example: tuple[str, phonenumbers.PhoneNumber], form: PhoneNumberFormat, separator: str
) -> None:
    region, number = example
    text = phonenumbers.format_number(number, form).removeprefix("tel:")
    text = text.replace(" ", separator) if form is PhoneNumberFormat.INTERNATIONAL else text
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    verdict = validate_contact({"mobile": text}, CN)
    assert verdict.valid, f"{region} {text!r}: {verdict.message}"
    assert verdict.normalized == {"mobile": e164}
    again = validate_contact({"mobile": verdict.normalized["mobile"]}, CN)
    assert again.normalized == verdict.normalized
    assert again.claims == verdict.claims == (Claim("mobile", e164),)
