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

import functools
import ipaddress
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from confusable_homoglyphs import categories as unicode_scripts
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

from .types import Claim, NotOpaque, Problem, Reason, Verdict

SecretResolver = Callable[[str, str], str | NotOpaque | None]
"""``resolve(secret_name, key)`` -> the key's decoded value, ``NotOpaque`` when the
Secret is not of type Opaque, or None when the Secret or the key does not exist
(in the object's own namespace)."""

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
    problems += _text_problems(spec, ("displayName", "mobile", "email"))
    problems += filter(None, (_blank_beside(spec, "mobile", "email"),
                              _blank_beside(spec, "email", "mobile")))
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
    # A field that failed its checks was present, just wrong: say that, not "neither".
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
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        return problem(f"not a valid phone number{_region_hint(number, default_region)}: "
                       f"{_POSSIBLE_ERRORS.get(possible, 'wrong length')}")
    # number_type() is UNKNOWN exactly when is_valid_number() is False (both match
    # the number against its region's patterns; asking once halves the cost).
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        return problem(f"not a valid phone number{_region_hint(number, default_region)}")
    if kind not in SMS_CAPABLE:
        what = _NUMBER_TYPE_NAMES.get(kind, "a number of unknown type")
        return problem(f"this is {what}, not a mobile number; alerts need an SMS-capable mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _region_hint(number: phonenumbers.PhoneNumber, default_region: str) -> str:
    if number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY:
        return (
            f" in region {default_region} (the default for numbers without a +country code;"
            " add one for other countries)"
        )
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return f" for +{number.country_code} ({region})" if region != "ZZ" else ""


def normalize_email(text: str) -> str | Problem:
    """Canonical lower-cased form of an email address, or the Problem (field spec.email).

    Internationalised addresses are accepted. The whole address is folded with
    NFKC first, so full-width or other compatibility forms (full-width letters) are the
    same address as their plain form in the local part as in the domain; the
    domain is compared in its Unicode form (``xn--bcher-kva.de`` and
    ``BÜCHER.de`` are one domain) and the address lower-cased, because the
    contract treats addresses as case-insensitive. A local part or domain label
    that mixes scripts (a Cyrillic letter a in a Latin name) is refused: it is a
    look-alike of another address.

    Most addresses have a plain ASCII local part and a domain shared with many
    others: for those the domain's checks (two thirds of the cost) are looked up,
    and the result is the one ``email_validator`` gives for the whole address
    (a property test holds the two paths equal).
    """
    folded = unicodedata.normalize("NFKC", text)
    local, _, domain = folded.rpartition("@")
    if _PLAIN_LOCAL_PART.fullmatch(local):
        checked = _checked_domain(domain)
        if checked is not None:
            unicode_domain, ascii_domain = checked
            if all(len(f"{local}@{d}".encode()) <= _EMAIL_MAX_LENGTH
                   for d in (domain, unicode_domain, ascii_domain)):
                return f"{local}@{unicode_domain}".lower()
    return _normalize_email_fully(text, folded)


# What email_validator accepts as is before the @ (RFC 5322 dot-atom text). Anything
# else (quotes, display names, Unicode, a second @) takes the full path; so does a
# domain that is refused, with its checks run again for the library's message.
_ATOM = r"[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+"
_PLAIN_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_EMAIL_MAX_LENGTH = 254  # octets in UTF-8, in each of the address's forms (RFC 5321)


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    """A domain's Unicode and IDNA ASCII forms, or None when it is refused (then the
    whole address takes the full path, for the library's own message)."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    if any(mixed_scripts(label) for label in result.domain.split(".")):
        return None
    return result.domain, result.ascii_domain


def _normalize_email_fully(text: str, folded: str) -> str | Problem:
    try:
        result = validate_email(folded, check_deliverability=False)
    except EmailNotValidError as exc:
        return Problem("spec.email", text, str(exc))
    for part in (result.local_part, *result.domain.split(".")):
        mixed = mixed_scripts(part)
        if mixed:
            return Problem(
                "spec.email",
                text,
                f"{part!r} mixes {' and '.join(mixed)} letters, so it looks like another address"
                " (a look-alike); write each part of the address in one script",
            )
    return result.normalized.lower()


# Scripts that are written together (Unicode TS #39 "highly restrictive"):
# Latin with Han and Japanese kana, with Han and Bopomofo, or with Han and Hangul.
_SCRIPTS_WRITTEN_TOGETHER = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})  # digits, punctuation, combining marks


def mixed_scripts(text: str) -> list[str]:
    """The scripts of ``text``'s letters, sorted, when they are not written together; else []."""
    if text.isascii():  # Latin letters, digits and punctuation: one script (and fast)
        return []
    scripts = set(unicode_scripts.unique_aliases(text)) - _NO_SCRIPT
    if len(scripts) < 2 or any(scripts <= allowed for allowed in _SCRIPTS_WRITTEN_TOGETHER):
        return []
    return sorted(script.capitalize() for script in scripts)


# ---------------------------------------------------------------- DingTalk bots


def validate_bot(spec: Mapping[str, Any], resolve: SecretResolver, settings: Settings) -> Verdict:
    """Validate a DingTalkBot spec, reading referenced Secrets through ``resolve``.

    Claims the webhook's access token. The reason is SECRET_NOT_FOUND when the
    only trouble is a missing Secret or key (it may still be created), else
    INVALID_SPEC.
    """
    problems = _shape_problems(DingTalkBotSpec, spec)
    if isinstance(spec, Mapping):
        problems += _text_problems(spec, ("displayName",))
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
        if value is None or isinstance(value, NotOpaque):
            missing.append(_secret_missing(field, ref, value))
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
        if value is None or isinstance(value, NotOpaque):
            missing.append(_secret_missing(field, ref, value))
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
        # A parameter's name is shown only when it is short: a long one may be the token.
        listed = ", ".join(repr(name) if len(name) < 16 else "(a long name)" for name in unexpected)
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


def _secret_missing(field: str, ref: SecretKeyRef, found: NotOpaque | None) -> Problem:
    if found is not None:
        return Problem(
            field,
            None,
            f"Secret {ref.name!r} in this namespace has type {found.secret_type!r}; the operator"
            " reads webhook URLs and signing secrets only from Secrets of type 'Opaque'"
            " (create an Opaque Secret of that name instead)",
        )
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
    if isinstance(spec, Mapping):
        problems += _text_problems(spec, ("displayName",))
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
# Digits with any separators people (or a paste) put between them: spaces of any
# kind, zero-width characters, dashes, dots, slashes, brackets, and the escapes
# (\u200b, \xa0) that a message shows for invisible characters.
_PHONE_SEPARATOR = (
    r"(?:[\s().\-/\u2010-\u2015\u2212\uff0d\u200b-\u200f\u2060\ufeff]"
    r"|\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}))"
)
_PHONE_IN_TEXT = re.compile(rf"[+\uff0b]?\d(?:\d|{_PHONE_SEPARATOR}){{5,}}\d")


_QUOTED_EMAIL_IN_TEXT = re.compile(r"'([^']*@[^']*)'")


def scrub_personal_data(text: str) -> str:
    """``text`` with every email address, phone-number-like run and URL credential redacted.

    Values quoted in a message ('...') are taken whole, so an address with a
    quoted or spaced local part is redacted entirely too.
    """
    text = redact_url(text)
    text = _QUOTED_EMAIL_IN_TEXT.sub(lambda m: f"'{redact(m.group(1), 'email')}'", text)
    text = _EMAIL_IN_TEXT.sub(lambda m: redact(m.group(0), "email"), text)
    return _PHONE_IN_TEXT.sub(lambda m: redact(m.group(0), "mobile"), text)


_USERINFO = re.compile(r"(?<=//)[^/?#\s'\"]*@")
_QUERY_OR_FRAGMENT = re.compile(r"[?#][^\s'\"]*")
_URL_PATH = re.compile(r"(?<=://)([^/?#\s'\"]*)(/[^?#\s'\"]*)")
# In a URL's path, a long run of token characters may be a credential.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_~%+=-]{16,}")


def redact_url(text: str) -> str:
    """``text`` (a webhook URL, or a message holding one) with its credentials cut short.

    Whatever a query parameter is called (``access_token``, ``Access_Token``,
    ``access%5Ftoken``, ``token``) and however it is encoded, every value after
    ``?``, ``&``, ``;`` or ``#`` is cut short, as are long parameter names and
    fragments (which may be the token itself), long runs of token characters in
    the path, and any userinfo before the host.
    """
    text = _USERINFO.sub("***@", text)
    text = _URL_PATH.sub(
        lambda m: m.group(1) + _TOKEN_RUN.sub(lambda t: redact(t.group(0), "token"), m.group(2)),
        text,
    )
    return _QUERY_OR_FRAGMENT.sub(lambda m: m.group(0)[0] + _redact_query(m.group(0)[1:]), text)


def _redact_query(query: str) -> str:
    pieces = re.split(r"([&;#])", query)
    for index, piece in enumerate(pieces):
        if index % 2 or not piece:
            continue  # a separator, or nothing between two
        name, eq, value = piece.partition("=")
        if len(name) >= 16:
            name = redact(name, "token")
        pieces[index] = name + eq + (redact(value, "token") if value else "")
    return "".join(pieces)


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
    # Interned: the store keeps each value again in the object's status (runtime.store).
    return Verdict(claims=tuple(Claim(c.kind, sys.intern(c.value)) for c in claims),
                   normalized={k: sys.intern(v) for k, v in normalized.items()})


# Characters that make text lie about itself: controls (NUL, newline, escape),
# invisible formatting (zero-width spaces, bidi overrides such as U+202E that
# reverse a `kubectl get` column) and line or paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
UNSAFE_CHARACTERS_REASON = (
    "must not contain control or invisible formatting characters"
    " (NUL, newlines, zero-width spaces, bidi overrides)"
)


def unsafe_characters(text: str) -> list[str]:
    """The control and format characters in ``text``, described (``U+202E RIGHT-TO-LEFT
    OVERRIDE``), in order of appearance, each once."""
    if text.isascii() and text.isprintable():  # no control character (and fast)
        return []
    found: dict[str, str] = {}
    for ch in text:
        if ch not in found and unicodedata.category(ch) in UNSAFE_CATEGORIES:
            name = unicodedata.name(ch, "")
            found[ch] = f"U+{ord(ch):04X}" + (f" {name}" if name else "")
    return list(found.values())


def _text_problems(spec: Mapping[str, Any], keys: Iterable[str]) -> list[Problem]:
    """Control or format characters in the text fields that have the right type."""
    problems = []
    for key in keys:
        value = spec.get(key)
        bad = unsafe_characters(value) if isinstance(value, str) else []
        if bad:
            problems.append(Problem(
                f"spec.{key}", value, f"{UNSAFE_CHARACTERS_REASON}; found {', '.join(bad)}"
            ))
    return problems


def _blank_beside(spec: Mapping[str, Any], key: str, other: str) -> Problem | None:
    """A blank ``spec[key]`` next to a filled-in ``spec[other]``: a channel that would be
    silently dropped (when both are blank, the contact has neither, which is reported)."""
    value, beside = spec.get(key), spec.get(other)
    if isinstance(value, str) and not value.strip() and isinstance(beside, str) and beside.strip():
        return Problem(
            f"spec.{key}", value,
            f"is empty: fill it in, or remove the field if this contact has no {key}"
            f" (spec.{other} alone is enough)",
        )
    return None


def display_name(spec: Mapping[str, Any], name: str) -> str:
    """What to call an object: its spec.displayName, or metadata.name when that is
    absent or blank (as the API reference says)."""
    value = spec.get("displayName")
    return value.strip() if isinstance(value, str) and value.strip() else name


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
