"""The plugin's API calls, with kubectl's way of choosing the cluster and namespace.

The kubeconfig is ``--kubeconfig``, else ``$KUBECONFIG`` (a ``:``-separated
list is merged), else ``~/.kube/config``; ``--context`` picks a context;
``-n`` wins over the context's namespace, which wins over ``default``. Every
failure becomes a :class:`ClusterError` whose text is fit for the user: what
went wrong and what to check, never a traceback.

Transient failures are retried as kubectl (client-go) retries them: 429 and
5xx (waiting as long as ``Retry-After`` says, else backing off) and a
connection reset mid-request, a bounded number of times; then the error says
how often it was tried. A refused connection is not retried: nothing listens.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from alert_contacts.domain.types import GROUP, VERSION
from alert_contacts.runtime.kube import PLURALS

MEMBER_KINDS = ("Contact", "DingTalkBot")

# Transient answers: throttled, or the server (or its storage) briefly unable to serve.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
ATTEMPTS = 5  # one call and four retries: about 8 s of backoff without Retry-After
MAX_RETRY_AFTER = 10.0  # seconds; a longer Retry-After is cut to this


class ClusterError(Exception):
    """A failure to show the user as is (exit code 1)."""


class Store(Protocol):
    """What the commands need from a cluster (a fake in unit tests)."""

    namespace: str  # the namespace of the command: -n, else the context's, else default

    def list_members(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        """Contacts and DingTalkBots, in one namespace or all (None)."""
        ...

    def list_groups(self, namespace: str) -> list[dict[str, Any]]: ...

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        ...

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        ...

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        """Set one annotation (a merge patch of metadata.annotations)."""
        ...


@dataclass(frozen=True)
class ConnectOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = 30


def _kubeconfig_path(option: str | None) -> str:
    """The kubeconfig file(s) kubectl would read, checked to exist."""
    path = option or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [Path(p).expanduser() for p in path.split(os.pathsep) if p]
    if not any(f.is_file() for f in files):
        source = "--kubeconfig" if option else "KUBECONFIG" if os.environ.get("KUBECONFIG") else (
            "the default kubeconfig"
        )
        raise ClusterError(
            f"no kubeconfig found at {path} ({source}); set KUBECONFIG or pass --kubeconfig"
        )
    return path


def _context_namespace(config_file: str, context: str | None) -> str | None:
    """The namespace of the chosen (or current) context; ClusterError for an unknown one."""
    contexts, current = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file
    )
    wanted = context or (current or {}).get("name")
    for entry in contexts or ():
        if entry.get("name") == wanted:
            namespace = (entry.get("context") or {}).get("namespace")
            return str(namespace) if namespace else None
    known = ", ".join(sorted(str(c.get("name")) for c in contexts or ())) or "none"
    raise ClusterError(f"context {wanted!r} not found in kubeconfig {config_file} "
                       f"(contexts: {known})")


def connect(options: ConnectOptions) -> KubeStore:
    config_file = _kubeconfig_path(options.kubeconfig)
    configuration = kubernetes.client.Configuration()
    try:
        context_namespace = _context_namespace(config_file, options.context)
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=options.context,
            client_configuration=configuration, persist_config=False,
        )
        namespace = options.namespace or context_namespace
    except (kubernetes.config.ConfigException, OSError, ValueError) as e:
        where = f"context {options.context!r} in " if options.context else ""
        raise ClusterError(f"cannot use {where}kubeconfig {config_file}: {e}") from None
    # One attempt per call: a refused connection should say so now, not after
    # urllib3's retries, and without its retry warnings on stderr.
    configuration.retries = False
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    api = kubernetes.client.ApiClient(configuration)
    return KubeStore(api, configuration.host, namespace or "default", options.request_timeout)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (the API server sends seconds)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return min(max(0.0, float(value)), MAX_RETRY_AFTER)
            except ValueError:
                return None
    return None


def retry_delay(attempt: int, error: BaseException) -> float | None:
    """Seconds to wait before trying again after ``attempt`` (1-based) failed with
    ``error``; None when it must not be retried (or the attempts are used up)."""
    if attempt >= ATTEMPTS:
        return None
    backoff: float = 0.5 * 2 ** (attempt - 1)  # 0.5, 1, 2, 4 s
    if isinstance(error, ApiException):
        if error.status not in RETRYABLE_STATUS:
            return None
        given = retry_after(error.headers)
        return backoff if given is None else float(given)
    if isinstance(error, urllib3.exceptions.ProtocolError):  # connection reset or dropped
        return backoff
    return None


def _status_body(error: ApiException) -> dict[str, Any]:
    """The metav1.Status the API server sent, or {} (a bare 404 has none)."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _server_message(error: ApiException) -> str:
    message = _status_body(error).get("message")
    return str(message) if message else f"{error.status} {error.reason}".strip()


def _object_not_found(error: ApiException) -> bool:
    """A 404 about one object, not about the resource type (which gets a bare 404)."""
    body = _status_body(error)
    details = body.get("details")
    return (error.status == 404 and body.get("reason") == "NotFound"
            and isinstance(details, dict) and bool(details.get("name")))


class KubeStore:
    def __init__(
        self, api: kubernetes.client.ApiClient, host: str, namespace: str, timeout: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self.host = host
        self.namespace = namespace
        self._timeout = timeout or None  # 0 means no timeout, as for kubectl
        self._sleep = sleep

    def _retrying(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The call, retried on transient failures; the last failure is raised with
        ``attempts`` set on it."""
        attempt = 1
        while True:
            try:
                return call(*args, _request_timeout=self._timeout, **kwargs)
            except (ApiException, urllib3.exceptions.HTTPError) as e:
                delay = retry_delay(attempt, e)
                if delay is None:
                    e.attempts = attempt  # type: ignore[union-attr]
                    raise
                self._sleep(delay)
                attempt += 1

    def _call(self, what: str, plural: str, call: Callable[..., Any], *args: Any,
              **kwargs: Any) -> Any:
        try:
            return self._retrying(call, *args, **kwargs)
        except ApiException as e:
            raise self._explain(what, plural, e) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._unreachable(getattr(e, "reason", None) or e, _attempts(e)) from None

    def _unreachable(self, reason: object, attempts: int = 1) -> ClusterError:
        tried = f" (tried {attempts} times)" if attempts > 1 else ""
        return ClusterError(
            f"cannot reach the Kubernetes API server at {self.host}: {reason}{tried}\n"
            "Is the cluster running, and are --context / KUBECONFIG the ones you meant?"
        )

    def _explain(self, what: str, plural: str, error: ApiException) -> ClusterError:
        if not error.status:  # the client reports TLS failures as status 0
            return self._unreachable(" ".join(str(error.reason).split()))
        message = _server_message(error)
        if error.status == 404 and not _object_not_found(error):
            return ClusterError(
                f"the cluster at {self.host} does not serve {plural}.{GROUP}/{VERSION}: "
                "are the alert-contacts CRDs installed? (kubectl apply -f crds/, or install "
                "the Helm chart)"
            )
        if error.status == 401:
            return ClusterError(
                f"unauthorized by {self.host} while trying to {what}: your credentials were "
                f"refused or have expired ({message})"
            )
        if error.status == 403:
            return ClusterError(f"forbidden: {message}")
        attempts = _attempts(error)
        tried = f", tried {attempts} times" if attempts > 1 else ""
        return ClusterError(f"cannot {what}: {message} (HTTP {error.status}{tried})")

    def list_members(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind in MEMBER_KINDS:
            found += self._list(kind, namespace, selector)
        return found

    def list_groups(self, namespace: str) -> list[dict[str, Any]]:
        return self._list("ContactGroup", namespace, None)

    def _list(self, kind: str, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        plural = PLURALS[kind]
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        options = {"label_selector": selector} if selector else {}
        if namespace is None:
            result = self._call(f"list {plural} {where}", plural,
                                self._custom.list_cluster_custom_object,
                                GROUP, VERSION, plural, **options)
        else:
            result = self._call(f"list {plural} {where}", plural,
                                self._custom.list_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural, **options)
        items: list[dict[str, Any]] = result.get("items") or []
        for item in items:
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", kind)
        return items

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        return self._one(kind, name, "delete", self._custom.delete_namespaced_custom_object,
                         namespace) is not _MISSING

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._one(kind, name, "get", self._custom.get_namespaced_custom_object,
                          namespace)
        return found if isinstance(found, dict) else None

    def _one(self, kind: str, name: str, verb: str, call: Callable[..., Any],
             namespace: str) -> Any:
        """``call`` on one object, retried like every call; ``_MISSING`` when the
        object does not exist."""
        plural = PLURALS[kind]
        try:
            return self._retrying(call, GROUP, VERSION, namespace, plural, name)
        except ApiException as e:
            if _object_not_found(e):
                return _MISSING
            raise self._explain(f"{verb} {kind.lower()}/{name}", plural, e) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._unreachable(getattr(e, "reason", None) or e, _attempts(e)) from None

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        plural = PLURALS[kind]
        self._call(f"annotate {kind.lower()}/{name}", plural,
                   self._custom.patch_namespaced_custom_object,
                   GROUP, VERSION, namespace, plural, name,
                   {"metadata": {"annotations": {key: value}}})


_MISSING = object()  # KubeStore._one: the object does not exist


def _attempts(error: BaseException) -> int:
    return int(getattr(error, "attempts", 1))
