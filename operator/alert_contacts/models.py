"""Spec models of the three kinds: the single source of the CRD schemas.

The models carry *shape* only (types, lengths, name syntax, which fields
exist). What a value *means* -- is this a mobile number, is this a DingTalk
webhook -- is decided in ``domain.validation``, which validates these models
first and then the semantics, for the admission webhook and the reconciler
alike. ``crdgen`` turns the JSON schemas of these models into the CRDs, so the
descriptions below are what ``kubectl explain`` prints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

DISPLAY_NAME_MAX = 64
MOBILE_MAX = 32
EMAIL_MAX = 254
WEBHOOK_URL_MAX = 512
MEMBERS_MAX = 100

# metadata.name of Contacts, DingTalkBots and Secrets (RFC 1123 subdomain).
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A key of a Secret's data (same rule as the API server's).
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
]
ContactName = Annotated[ObjectName, Field(description="metadata.name of a Contact.")]
BotName = Annotated[ObjectName, Field(description="metadata.name of a DingTalkBot.")]
SecretKeyName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=SECRET_KEY)]

# CEL rules live next to the models they guard; crdgen copies them into the CRDs.
CONTACT_NEEDS_MOBILE_OR_EMAIL = "a contact needs spec.mobile, spec.email, or both"
WEBHOOK_NEEDS_ONE_SOURCE = "spec.webhook needs exactly one of url or secretRef"
# The API server refuses what domain.validation refuses with more detail (which
# character, where): controls, invisible formatting (zero-width, bidi overrides)
# and line/paragraph separators, that would make `kubectl get` lie.
NO_CONTROL_CHARACTERS: dict[str, JsonValue] = {
    "x-kubernetes-validations": [
        {
            "rule": "!self.matches(r'[\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]')",
            "message": "must not contain control or invisible formatting characters"
            " (NUL, newlines, zero-width spaces, bidi overrides)",
        }
    ]
}


class _Spec(BaseModel):
    # strict: the API server has already typed the JSON; a YAML number where a
    # string belongs (an unquoted mobile number) must be refused, not coerced.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class ContactSpec(_Spec):
    """A person that alerts reach by mobile phone (SMS/voice) and/or email.

    At least one of mobile and email is required. Each normalised mobile number
    and email address belongs to one Contact only, cluster-wide.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # Empty strings count as absent, as in the operator's own check.
                    "rule": "(has(self.mobile) && self.mobile != '')"
                    " || (has(self.email) && self.email != '')",
                    "message": CONTACT_NEEDS_MOBILE_OR_EMAIL,
                }
            ]
        }
    )

    display_name: str | None = Field(
        default=None,
        max_length=DISPLAY_NAME_MAX,
        description=(
            "Human-readable name shown in alert notifications; defaults to metadata.name "
            f"(also when empty). At most {DISPLAY_NAME_MAX} characters, without control or "
            "invisible formatting characters."
        ),
        json_schema_extra=NO_CONTROL_CHARACTERS,
    )
    mobile: str | None = Field(
        default=None,
        max_length=MOBILE_MAX,
        description=(
            "Mobile phone number that receives SMS and voice alerts, in any common format "
            "('+86 138 0013 8000', '138-0013-8000', '008613800138000'). Numbers without "
            "a +country code are read in the operator's default region (CN unless "
            "configured). Must be a mobile (SMS-capable) number; landlines are refused. "
            "Unique cluster-wide after normalisation to E.164; see status.normalized.mobile. "
            "An empty value next to an email is refused (remove the field instead)."
        ),
        json_schema_extra=NO_CONTROL_CHARACTERS,
    )
    email: str | None = Field(
        default=None,
        max_length=EMAIL_MAX,
        description=(
            "Email address that receives alert emails. Compared case-insensitively, after "
            "folding compatibility forms (NFKC: full-width letters are plain letters), and "
            "unique cluster-wide; see status.normalized.email. A local part or domain label "
            "mixing scripts (a Cyrillic letter in a Latin name) is refused as a look-alike. "
            "An empty value next to a mobile is refused (remove the field instead)."
        ),
        json_schema_extra=NO_CONTROL_CHARACTERS,
    )
    system_notifications: bool = Field(
        default=False,
        description=(
            "Whether this contact also receives system notifications (platform "
            "announcements, quota and billing notices), not just alerts."
        ),
    )


class SecretKeyRef(_Spec):
    """A key of a Secret in the same namespace as the referring object."""

    name: ObjectName = Field(description="Name of the Secret, in the same namespace.")
    key: SecretKeyName = Field(description="Key within the Secret's data.")


class WebhookSource(_Spec):
    """Where the DingTalk robot's webhook URL comes from: exactly one of url or secretRef."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.url) != has(self.secretRef)",
                    "message": WEBHOOK_NEEDS_ONE_SOURCE,
                }
            ]
        }
    )

    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=WEBHOOK_URL_MAX,
        description=(
            "The webhook URL inline, 'https://oapi.dingtalk.com/robot/send?access_token=...'. "
            "The access token is a credential: prefer secretRef, which keeps it out of "
            "the object (inline URLs are accepted with a warning)."
        ),
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "A Secret key holding the webhook URL "
            "('https://oapi.dingtalk.com/robot/send?access_token=...')."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> WebhookSource:
        if (self.url is None) == (self.secret_ref is None):
            raise PydanticCustomError("webhook_source", WEBHOOK_NEEDS_ONE_SOURCE)
        return self


class DingTalkBotSpec(_Spec):
    """A DingTalk group-chat robot that alerts reach through its webhook.

    It counts as a contact towards the quota; each webhook access token belongs
    to one DingTalkBot only, cluster-wide.
    """

    display_name: str | None = Field(
        default=None,
        max_length=DISPLAY_NAME_MAX,
        description=(
            "Human-readable name of the robot; defaults to metadata.name (also when empty). "
            f"At most {DISPLAY_NAME_MAX} characters, without control or invisible formatting "
            "characters."
        ),
        json_schema_extra=NO_CONTROL_CHARACTERS,
    )
    webhook: WebhookSource = Field(
        description="The robot's webhook URL: exactly one of url or secretRef."
    )
    signing_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "A Secret key holding the robot's signing secret (DingTalk 'sign' security "
            "mode; the secret starts with 'SEC'). Omit when the robot does not sign."
        ),
    )


class ContactGroupSpec(_Spec):
    """A set of Contacts and DingTalkBots in the same namespace that alerts notify together.

    Members that do not exist (yet) are reported in status, not refused: GitOps
    tools apply objects in any order.
    """

    display_name: str | None = Field(
        default=None,
        max_length=DISPLAY_NAME_MAX,
        description=(
            "Human-readable name of the group; defaults to metadata.name (also when empty). "
            f"At most {DISPLAY_NAME_MAX} characters, without control or invisible formatting "
            "characters."
        ),
        json_schema_extra=NO_CONTROL_CHARACTERS,
    )
    contacts: list[ContactName] = Field(
        default_factory=list,
        max_length=MEMBERS_MAX,
        description=(
            f"Names of Contacts in the same namespace (at most {MEMBERS_MAX}, no duplicates)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    ding_talk_bots: list[BotName] = Field(
        default_factory=list,
        max_length=MEMBERS_MAX,
        description=(
            f"Names of DingTalkBots in the same namespace (at most {MEMBERS_MAX}, no duplicates)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


# ---------------------------------------------------------------- status (tenure)
# Written by the operator only; see domain.tenure for how the times are read.


class ClaimRecord(BaseModel):
    """Since when this object has continuously claimed one key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["mobile", "email", "webhook"] = Field(
        description="Which key: mobile, email or webhook (the access token of the webhook URL)."
    )
    value: str = Field(
        max_length=EMAIL_MAX,
        description=(
            "The claimed value as status.normalized shows it; for a webhook, a keyed digest "
            "of the access token ('hmac-sha256:' and 16 hex digits), never the token itself."
        ),
    )
    since: str = Field(
        json_schema_extra={"format": "date-time"},
        description=(
            "When this object started claiming the value (created with it, edited to it, or "
            "became valid with it). Among the objects claiming one value, the earliest owns "
            "it; a later edit of another object cannot take it away."
        ),
    )


class ClaimantStatus(BaseModel):
    """The tenure fields of a Contact's or DingTalkBot's status."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)

    claims: list[ClaimRecord] = Field(
        default_factory=list,
        max_length=3,
        description=(
            "The keys this object claims and since when, recorded by the operator. A value "
            "that is not listed here (a new spec, a Secret now holding another token) counts "
            "from the moment the operator first sees it."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["key"]},
    )
    eligible_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description=(
            "When this object last became valid and unique (absent while it is not). The "
            "quota goes to the objects that have been eligible longest, so a later edit of "
            "another object cannot take this object's slot."
        ),
    )


def claimant_status_properties() -> dict[str, Any]:
    """The raw pydantic JSON schema of the tenure status fields (crdgen makes it structural)."""
    return ClaimantStatus.model_json_schema(by_alias=True, mode="validation")


SPEC_MODELS: dict[str, type[_Spec]] = {
    "Contact": ContactSpec,
    "DingTalkBot": DingTalkBotSpec,
    "ContactGroup": ContactGroupSpec,
}


def spec_schema(kind: str) -> dict[str, Any]:
    """The raw pydantic JSON schema of a kind's spec (crdgen makes it structural)."""
    return SPEC_MODELS[kind].model_json_schema(by_alias=True, mode="validation")


# ---------------------------------------------------------------- status written by delivery


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True)


class DeliveryRecord(_Status):
    """The outcome of the last delivery on this channel. Written when the outcome
    changes (and its time refreshed at most every 10 minutes), not once per alert."""

    time: str = Field(description="When this outcome was recorded (RFC 3339, UTC).",
                      json_schema_extra={"format": "date-time"})
    result: Literal["Delivered", "Failed", "Retrying"] = Field(
        description=(
            "Delivered; Failed (a permanent failure, not retried: fix the configuration); "
            "Retrying (a transient failure that outlasted the in-request retries: "
            "Alertmanager sends the notification again)."
        ),
    )
    reason: str = Field(
        description=(
            "CamelCase reason: Delivered, SignatureRejected, KeywordMissing, IpNotAllowed, "
            "TokenNotFound, BotDisabled, GroupDissolved, RateLimited, ServerError, "
            "NetworkError, Timeout, SmtpRejected, SmtpAuthFailed, SmtpUnavailable, ..."
        ),
    )
    code: int | None = Field(
        default=None,
        description="DingTalk errcode, SMTP reply code or HTTP status, when there was one.",
    )
    message: str | None = Field(
        default=None,
        description=(
            "The receiving side's answer (DingTalk errmsg, SMTP reply) or what was sent; "
            "never a token or an address."
        ),
    )


class GroupDelivery(_Status):
    """The group's last delivery per channel."""

    dingtalk: DeliveryRecord | None = Field(
        default=None, description="The last delivery to one of the group's DingTalkBots.")
    email: DeliveryRecord | None = Field(
        default=None, description="The last email to the group's member Contacts.")


class LastTest(_Status):
    """The last test send, requested with the alerting.contacts.dev/send-test annotation
    (`kubectl contacts test`). A value already recorded here is not sent again."""

    request: str = Field(description="The annotation's value this result answers.")
    time: str = Field(description="When the test finished (RFC 3339, UTC).",
                      json_schema_extra={"format": "date-time"})
    result: Literal["Succeeded", "Failed"] = Field(description="Succeeded or Failed.")
    message: str = Field(description="What was sent where, or why it failed.")


STATUS_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    "DingTalkBot": {"delivery": DeliveryRecord, "lastTest": LastTest},
    "ContactGroup": {"delivery": GroupDelivery, "lastTest": LastTest},
}


def status_field_schemas(kind: str) -> dict[str, dict[str, Any]]:
    """Raw JSON schemas of the status fields the delivery engine writes for a kind."""
    return {key: model.model_json_schema(by_alias=True, mode="validation")
            for key, model in STATUS_MODELS.get(kind, {}).items()}
