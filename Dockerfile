# syntax=docker/dockerfile:1
# The alert-contacts-operator image: `python -m alert_contacts`, as a non-root user.
#
#   docker build -t REGISTRY/alert-contacts-operator:0.1.0 .
#   podman build -t REGISTRY/alert-contacts-operator:0.1.0 .
#   make image     # podman, on a Debian base made with debootstrap (no registry needed)
#
# Base image: pinned to a Python patch release on a Debian release, the same
# Python minor the test suite runs on (pyproject.toml: requires-python >= 3.11).
# A patch-level tag changes only when Docker Official Images rebuild it for
# Debian security fixes; to make builds fully reproducible, pin the digest in
# your registry too (python:3.11.14-slim-trixie@sha256:...) and let Renovate
# or Dependabot bump it. Any image with python3 (>= 3.11) and its venv module
# serves: `--build-arg PYTHON_IMAGE=...` (make image passes its Debian base).
#
# Behind a TLS-intercepting proxy, give pip the proxy's CA as a build secret; it
# is added to pip's own bundle for the install step only and stays out of every
# layer:  docker build --secret id=extra-ca,src=/path/to/ca.pem .
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# A self-contained virtualenv, copied whole into the runtime stage. First the
# dependencies and build requirements that pyproject.toml names (a layer that a
# code change does not rebuild), then the package. What the operator never runs
# stays out of it, about 200 MB (tests/e2e/test_image.py runs the result as the
# chart does):
# - pip and setuptools: build tools;
# - the asyncio variant of the Kubernetes client (kubernetes/aio): the operator
#   uses only the library's configuration loaders, with its own aiohttp session;
# - the data of phonenumbers' geocoder, carrier and time-zone modules: the
#   operator only parses and validates numbers;
# - the sources of the generated Kubernetes API client (its models and API
#   classes, mostly docstrings; the operator uses only its configuration
#   loaders), kept as bytecode next to where the sources were: a traceback
#   through them names the file and line, without the text.
COPY pyproject.toml ./
RUN --mount=type=secret,id=extra-ca \
    set -eu; \
    python3 -m venv /opt/venv; \
    if [ -s /run/secrets/extra-ca ]; then \
        certifi="$(/opt/venv/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')"; \
        cat "$certifi" /run/secrets/extra-ca > /tmp/pip-ca.pem; \
        export PIP_CERT=/tmp/pip-ca.pem; \
    fi; \
    /opt/venv/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' \
        > /tmp/requirements.txt; \
    /opt/venv/bin/pip install --quiet --requirement /tmp/requirements.txt; \
    rm -f /tmp/pip-ca.pem /tmp/requirements.txt; \
    site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"; \
    rm -rf "$site/phonenumbers/geodata" "$site/phonenumbers/carrierdata" \
        "$site/phonenumbers/tzdata" "$site/kubernetes/aio"; \
    generated="$site/kubernetes/client"; \
    /opt/venv/bin/python -m compileall -q -b -j 0 "$generated"; \
    find "$generated" -name '*.py' -delete; \
    find "$generated" -name __pycache__ -prune -exec rm -rf {} +
# pyproject.toml names README.md as the package description: the build reads it.
COPY README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation --no-index . \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
    && /opt/venv/bin/python -c 'import alert_contacts.__main__, alert_contacts.handlers, \
kubernetes.client, phonenumbers; kubernetes.client.Configuration(); \
phonenumbers.parse("+8613800138000")'

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 alert-contacts \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin alert-contacts
COPY --from=build /opt/venv /opt/venv
# The chart runs with a read-only root filesystem: no bytecode writes at run time
# (pip compiled it at build time). Without the chart's flags the webhook is off:
# the default "local" mode serves on 127.0.0.1, which an API server cannot reach.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALERT_CONTACTS_WEBHOOK=none
# Numeric, so that Kubernetes' runAsNonRoot can verify it is not root.
USER 10001:10001
# admission webhook (--webhook=service), /healthz, /metrics, Alertmanager receiver
EXPOSE 9443 8080 9090 8088
ENTRYPOINT ["python", "-m", "alert_contacts"]
