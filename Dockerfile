# syntax=docker/dockerfile:1
# The alert-contacts-operator image: `python -m alert_contacts`, as a non-root user.
#
#   docker build -t REGISTRY/alert-contacts-operator:0.1.0 .
#
# Base image: pinned to a Python patch release on a Debian release, the same
# Python minor the test suite runs on (pyproject.toml: requires-python >= 3.11).
# A patch-level tag changes only when Docker Official Images rebuild it for
# Debian security fixes; to make builds fully reproducible, pin the digest in
# your registry too (python:3.11.14-slim-trixie@sha256:...) and let Renovate
# or Dependabot bump it.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pyproject.toml names README.md as the package description: the build reads it.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# A self-contained virtualenv, copied whole into the runtime stage; pip and
# setuptools are build tools, not needed to run.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

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
