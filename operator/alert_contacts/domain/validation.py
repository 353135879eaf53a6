"""One validation path for specs, shared by the admission webhook and the reconciler.

Each ``validate_*`` function takes the plain ``spec`` mapping and returns a
:class:`Verdict`; none of them raises on bad input. Shape (types, lengths,
unknown fields) comes from the pydantic models in ``alert_contacts.models``;
meaning (is this a mobile number, an email address, a DingTalk webhook) is
decided here with ``phonenumbers``, ``email_validator`` and ``urllib.parse``.

Credentials never reach a message: webhook URLs read from a Secret are
described by the Secret's name and key, inline URLs are shown with the access
token cut short, and signing secrets are never shown at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from alert_contacts.models import (
    CONTACT_NEEDS_MOBILE_OR_EMAIL,
    ContactGroupSpec,
    ContactSpec,
    DingTalkBotSpec,
    SecretKeyRef,
)
from alert_contacts.settings import HTTPS_PORT, Settings, allowed_endpoints

from .types import Claim, Problem, Reason, Verdict

SecretResolver = Callable[[str, str], str | None]
"""``resolve(secret_name, key)`` -> the key's decoded value, or None when the
Secret or the key does not exist (in the object's own namespace)."""

RedactKind = Literal["mobile", "email", "webhook", "token"]

SMS_CAPABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
WEBHOOK_PATH = "/robot/send"
# DingTalk issues 64 hex characters; allow some slack in both directions.
ACCESS_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
SIGNING_SECRET = re.compile(r"SEC[A-Za-z0-9]{16,128}")
# Printable ASCII without space or backslash: anything else in a URL is a trick
# (urlsplit silently drops tabs and newlines; browsers read '\' as '/').
URL_CHARS = re.compile(r"[!-\[\]-~]+")

_NUMBER_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "a landline (fixed-line) number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "a VoIP number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a company (UAN) number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
}

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "the country code is not valid",
    NumberParseException.NOT_A_NUMBER: "this is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    NumberParseException.TOO_LONG: "too long to be a phone number",
}

_POSSIBLE_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: "the country code is not valid",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}


# ---------------------------------------------------------------- contacts


def validate_contact(spec: Mapping[str, Any], settings: Settings) -> Verdict:
    """Validate a Contact spec; claims its normalised mobile and email."""
    problems = _shape_problems(ContactSpec, spec)
    if not isinstance(spec, Mapping):
        return _verdict(problems, [], {})
    bad_fields = {p.field for p in problems}
    mobile_text = _present_text(spec, "mobile", bad_fields)
    email_text = _present_text(spec, "email", bad_fields)

    claims: list[Claim] = []
    normalized: dict[str, str] = {}
    if mobile_text is not None:
        mobile = normalize_mobile(mobile_text, settings.default_region)
        if isinstance(mobile, Problem):
            problems.append(mobile)
        else:
            claims.append(Claim("mobile", mobile))
            normalized["mobile"] = mobile
    if email_text is not None:
        email = normalize_email(email_text)
        if isinstance(email, Problem):
            problems.append(email)
        else:
            claims.append(Claim("email", email))
            normalized["email"] = email
    # A field that failed its shape check was present, just wrong: say that, not "neither".
    if (
        mobile_text is None
        and email_text is None
        and not bad_fields & {"spec.mobile", "spec.email"}
    ):
        problems.append(Problem("spec", None, CONTACT_NEEDS_MOBILE_OR_EMAIL))
    return _verdict(problems, claims, normalized)


def normalize_mobile(text: str, default_region: str) -> str | Problem:
    """E.164 form of an SMS-capable number, or the Problem with it (field spec.mobile)."""

    def problem(reason: str) -> Problem:
        return Problem("spec.mobile", text, reason)

    # phonenumbers reads letters as keypad digits (1-800-FLOWERS) and accepts
    # extensions ("ext. 12"); neither can receive an SMS.
    if any(ch.isalpha() for ch in text):
        return problem(
            "contains letters; write a mobile number in digits (spaces, +, -, ( ) and . are fine),"
            " without an extension"
        )
    try:
        number = phonenumbers.parse(text, default_region, keep_raw_input=True)
    except NumberParseException as exc:
        return problem(_PARSE_ERRORS.get(exc.error_type, "this is not a phone number"))
    if number.extension:
        return problem("a mobile number cannot have an extension")
    where = _region_hint(number, text, default_region)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        return problem(
            f"not a valid phone number{where}: {_POSSIBLE_ERRORS.get(possible, 'wrong length')}"
        )
    if not phonenumbers.is_valid_number(number):
        return problem(f"not a valid phone number{where}")
    kind = phonenumbers.number_type(number)
    if kind not in SMS_CAPABLE:
        what = _NUMBER_TYPE_NAMES.get(kind, "a number of unknown type")
        return problem(f"this is {what}, not a mobile number; alerts need an SMS-capable mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _region_hint(number: phonenumbers.PhoneNumber, text: str, default_region: str) -> str:
    if number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY:
        return (
            f" in region {default_region} (the default for numbers without a +country code;"
            " add one for other countries)"
        )
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return f" for +{number.country_code} ({region})" if region != "ZZ" else ""


def normalize_email(text: str) -> str | Problem:
    """Canonical lower-cased form of an email address, or the Problem (field spec.email).

    Internationalised addresses are accepted: the domain is compared in its
    Unicode form (``xn--bcher-kva.de`` and ``BÜCHER.de`` are one domain) and the
    local part NFC-normalised, then the whole address is lower-cased, because
    the contract treats addresses as case-insensitive.
    """
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return Problem("spec.email", text, str(exc))
    return result.normalized.lower()


# ---------------------------------------------------------------- DingTalk bots


def validate_bot(spec: Mapping[str, Any], resolve: SecretResolver, settings: Settings) -> Verdict:
    """Validate a DingTalkBot spec, reading referenced Secrets through ``resolve``.

    Claims the webhook's access token. The reason is SECRET_NOT_FOUND when the
    only trouble is a missing Secret or key (it may still be created), else
    INVALID_SPEC.
    """
    problems = _shape_problems(DingTalkBotSpec, spec)
    if problems:
        return _verdict(problems, [], {})
    model = DingTalkBotSpec.model_validate(dict(spec))

    missing: list[Problem] = []
    claims: list[Claim] = []
    normalized: dict[str, str] = {}
    webhook = model.webhook
    url: str | None = None
    refused: Callable[[str], Problem] | None = None  # names where the URL came from
    if webhook.url is not None:
        url = webhook.url
        refused = partial(Problem, "spec.webhook.url", redact_url(webhook.url))
    elif webhook.secret_ref is not None:
        ref, field = webhook.secret_ref, "spec.webhook.secretRef"
        value = resolve(ref.name, ref.key)
        if value is None:
            missing.append(_secret_missing(field, ref))
        else:
            url = value.strip()
            refused = partial(_secret_problem, field, ref, "webhook URL")
    if url is not None and refused is not None:
        checked = check_webhook_url(url, settings.dingtalk_hosts)
        if isinstance(checked, str):
            problems.append(refused(checked))
        else:
            host, token = checked
            claims.append(Claim("webhook", token))
            normalized["webhookHost"] = host

    if model.signing_secret_ref is not None:
        ref, field = model.signing_secret_ref, "spec.signingSecretRef"
        value = resolve(ref.name, ref.key)
        if value is None:
            missing.append(_secret_missing(field, ref))
        elif not SIGNING_SECRET.fullmatch(value.strip()):
            problems.append(
                _secret_problem(
                    field,
                    ref,
                    "signing secret",
                    "must be 'SEC' followed by 16 to 128 letters and digits,"
                    " as DingTalk shows it for the robot's 'sign' security setting",
                )
            )

    if missing and not problems:
        return Verdict(problems=tuple(missing), reason=Reason.SECRET_NOT_FOUND)
    return _verdict([*problems, *missing], claims, normalized)


def check_webhook_url(url: str, allowed_hosts: Iterable[str]) -> tuple[str, str] | str:
    """``(host, access_token)`` of a DingTalk robot webhook URL, or why it is not one.

    The reason never contains the token, the query or the userinfo, so it is
    safe to show for URLs read from a Secret. An explicit port is refused
    unless it is 443 (the https default, so the same endpoint) or the allowed
    hosts name the host with that port (``host:port``, then the only port for it).
    """
    if not url:
        return "there is no URL (the value is empty, or not text starting with https://)"
    if not URL_CHARS.fullmatch(url):
        return "the URL may contain printable ASCII only, without spaces or backslashes"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL cannot be parsed (bad host or port)"
    if parts.scheme != "https":
        return f"the URL must use https, not {parts.scheme or 'no scheme'!r}"
    if "@" in parts.netloc:
        return "the URL must not contain a user name or password before the host"
    host = (parts.hostname or "").lower()
    if not host:
        return "the URL has no host"
    if _is_ip_literal(host):
        return f"the host must be a DingTalk host name, not an IP address {host!r}"
    hosts = tuple(h.lower() for h in allowed_hosts)
    endpoints = allowed_endpoints(hosts)
    if host not in endpoints:
        return f"the host {host!r} is not an allowed DingTalk host ({', '.join(hosts)})"
    ports = endpoints[host]
    if (port or HTTPS_PORT) not in ports:
        allowed = ", ".join(str(p) for p in sorted(ports))
        return f"the URL must not name port {port or HTTPS_PORT} (allowed for {host}: {allowed})"
    if parts.netloc.lower() not in (host, *(f"{host}:{p}" for p in ports)):
        return "the host part of the URL is malformed"
    if parts.path != WEBHOOK_PATH:
        return f"the path must be exactly {WEBHOOK_PATH}"
    if parts.fragment or url.endswith("#"):
        return "the URL must not have a #fragment"
    params = [p.partition("=") for p in parts.query.split("&")] if parts.query else []
    names = [name for name, _, _ in params]
    unexpected = sorted({name for name in names if name != "access_token"})
    if unexpected:
        listed = ", ".join(repr(name) for name in unexpected)
        return f"unexpected query parameter(s) {listed}; only access_token is allowed"
    if not names:
        return "the URL has no access_token query parameter"
    if len(names) > 1:
        return "access_token is given more than once"
    token = params[0][2]
    if not token:
        return "the access_token is empty"
    if not ACCESS_TOKEN.fullmatch(token):
        return (
            "the access_token must be 16 to 128 letters, digits, '-' or '_'"
            " (DingTalk shows 64 hex characters)"
        )
    return host, token


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _secret_missing(field: str, ref: SecretKeyRef) -> Problem:
    return Problem(
        field,
        None,
        f"Secret {ref.name!r} key {ref.key!r} not found in this namespace"
        " (create the Secret or add the key)",
    )


def _secret_problem(field: str, ref: SecretKeyRef, what: str, reason: str) -> Problem:
    # The value is a credential: name where it lives instead of echoing it.
    return Problem(field, None, f"the {what} in Secret {ref.name!r} key {ref.key!r}: {reason}")


# ---------------------------------------------------------------- groups


def validate_group(spec: Mapping[str, Any]) -> Verdict:
    """Validate a ContactGroup spec (shape only: groups claim no keys)."""
    problems = _shape_problems(ContactGroupSpec, spec)
    if not problems:
        model = ContactGroupSpec.model_validate(dict(spec))
        for field, names in (
            ("spec.contacts", model.contacts),
            ("spec.dingTalkBots", model.ding_talk_bots),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    problems.append(Problem(f"{field}[{index}]", name, "listed more than once"))
                seen.add(name)
    return _verdict(problems, [], {})


# ---------------------------------------------------------------- redaction


def redact(value: str, kind: RedactKind) -> str:
    """A form of a key that is safe for logs: enough to recognise, not to use.

    mobile ``+8613800138000`` -> ``+86*******8000``; email ``alice@example.com``
    -> ``a***@example.com``; webhook/token ``0123456789abcdef`` -> ``0123…``.
    """
    if kind == "mobile":
        return _redact_mobile(value)
    if kind == "email":
        local, at, domain = value.rpartition("@")
        if not at:
            return _redact_tail(value)
        return f"{local[:1]}***@{domain}"
    # Short values give away too much with four characters shown.
    shown = 4 if len(value) >= 16 else 0
    return value[:shown] + "…"


_EMAIL_IN_TEXT = re.compile(r"[^\s'\"@,;()<>]+@[^\s'\",;()<>]+")
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d ().-]{5,}\d")


_QUOTED_EMAIL_IN_TEXT = re.compile(r"'([^']*@[^']*)'")


def scrub_personal_data(text: str) -> str:
    """``text`` with every email address and phone-number-like run redacted.

    Values quoted in a message ('...') are taken whole, so an address with a
    quoted or spaced local part is redacted entirely too.
    """
    text = _QUOTED_EMAIL_IN_TEXT.sub(lambda m: f"'{redact(m.group(1), 'email')}'", text)
    text = _EMAIL_IN_TEXT.sub(lambda m: redact(m.group(0), "email"), text)
    return _PHONE_IN_TEXT.sub(lambda m: redact(m.group(0), "mobile"), text)


def redact_url(url: str) -> str:
    """A webhook URL with the access token cut short and any userinfo hidden."""
    url = re.sub(r"(?<=//)[^/?#]*@", "***@", url)
    return re.sub(
        r"(access_token=)([^&#]*)", lambda m: m.group(1) + redact(m.group(2), "token"), url
    )


def _redact_mobile(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except NumberParseException:
        return _redact_tail(value)
    prefix = f"+{number.country_code}"
    national = phonenumbers.national_significant_number(number)
    return prefix + _redact_tail(national)


def _redact_tail(value: str) -> str:
    keep = 4 if len(value) > 6 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]


# ---------------------------------------------------------------- shared


def _verdict(problems: list[Problem], claims: list[Claim], normalized: dict[str, str]) -> Verdict:
    if problems:
        return Verdict(problems=tuple(problems), reason=Reason.INVALID_SPEC)
    return Verdict(claims=tuple(claims), normalized=normalized)


def _present_text(spec: Mapping[str, Any], key: str, bad_fields: set[str]) -> str | None:
    """The stripped string at ``spec[key]``, None when absent, empty or mis-shaped."""
    value = spec.get(key)
    if f"spec.{key}" in bad_fields or not isinstance(value, str):
        return None
    return value.strip() or None


def _shape_problems(model: type[BaseModel], spec: Mapping[str, Any]) -> list[Problem]:
    """Problems pydantic finds with the spec's shape, each naming its spec.* field."""
    if not isinstance(spec, Mapping):
        return [Problem("spec", None, "must be an object")]
    try:
        model.model_validate(dict(spec))
    except ValidationError as exc:
        return [_problem_from_error(error) for error in exc.errors()]
    return []


def _problem_from_error(error: ErrorDetails) -> Problem:
    loc: tuple[str | int, ...] = error["loc"]
    field = "spec"
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    raw = error.get("input")
    value = _shown_value(raw)

    if kind == "extra_forbidden":
        reason = "unknown field (remove it, or check its spelling and case)"
    elif kind == "missing":
        reason = "is required"
        value = None
    elif kind == "string_too_long":
        reason = f"is {len(raw)} characters long, at most {ctx['max_length']} are allowed"
    elif kind == "string_too_short":
        reason = "must not be empty"
    elif kind == "too_long":
        reason = f"has {ctx.get('actual_length')} items, at most {ctx['max_length']} are allowed"
        value = None
    elif kind == "string_pattern_mismatch" and field.endswith(".key"):
        reason = "is not a valid Secret key (letters, digits, '-', '_' and '.')"
    elif kind == "string_pattern_mismatch":
        reason = (
            "is not a valid object name (lower-case letters, digits, '-' and '.',"
            " starting and ending with a letter or digit)"
        )
    elif kind == "string_type":
        reason = "must be a string" + (" (quote it in YAML)" if isinstance(raw, int) else "")
    elif kind == "bool_type":
        reason = "must be true or false"
    elif kind in ("model_type", "dict_type"):
        reason = "must be an object"
    elif kind == "list_type":
        reason = "must be a list"
    else:
        reason = str(error["msg"])
    return Problem(field, value, reason)


def _shown_value(raw: Any) -> str | None:
    if isinstance(raw, str):
        # Whatever field it landed in, a pasted webhook URL is still a credential.
        return redact_url(raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return str(raw)
    return None
