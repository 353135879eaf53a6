# alert-contacts-operator: every task a developer or CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLUSTER := $(PY) tests/controlplane/cluster.py
CHART := deploy/helm/alert-contacts-operator

.PHONY: help install tools image cluster-up cluster-down run crds manifests lint unit e2e test bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP) ## create .venv/ with the package and its test tools

tools: ## build (or reuse from ~/.cache/alert-contacts) bin/{kube-apiserver,kube-controller-manager,etcd,kubectl,helm,kstatus,alertmanager}
	bash tests/controlplane/build.sh

image: ## build the operator image with podman on a cached Debian base (IMAGE, EXTRA_CA: tests/image/build.sh)
	bash tests/image/build.sh

cluster-up: install tools ## start the local control plane if not running; prints the kubeconfig path last
	@$(CLUSTER) up

cluster-down: install ## stop the local control plane and remove its state
	@$(CLUSTER) down

run: install ## run the operator (starts the local control plane when KUBECONFIG is unset)
	@set -euo pipefail; \
	if [[ -z "$${KUBECONFIG:-}" ]]; then \
		$(MAKE) --no-print-directory tools >&2; \
		export KUBECONFIG="$$($(CLUSTER) up | tail -n1)"; \
		echo "using the local control plane: export KUBECONFIG=$$KUBECONFIG" >&2; \
	fi; \
	kubectl="$$(command -v kubectl || true)"; \
	if [[ -z "$$kubectl" ]]; then $(MAKE) --no-print-directory tools >&2; kubectl=bin/kubectl; fi; \
	"$$kubectl" apply --server-side -f crds/ >&2; \
	"$$kubectl" wait --for=condition=Established --timeout=60s -f crds/ >&2; \
	exec $(PY) -m alert_contacts

crds: install ## regenerate crds/, the chart's copy and docs/api.md from the pydantic models
	$(PY) -m alert_contacts.crdgen crds
	$(PY) -m alert_contacts.crdgen $(CHART)/crds
	$(PY) -m alert_contacts.apidoc

manifests: install tools ## render deploy/manifests/ (plain YAML for kubectl) from the Helm chart
	$(PY) deploy/render_manifests.py

lint: install ## ruff and mypy (strict on the package)
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/mypy

unit: install ## unit tests: pure functions, no cluster
	$(VENV)/bin/pytest tests/unit

e2e: install tools image ## e2e tests on a real kube-apiserver + etcd started for the run, and the image
	$(VENV)/bin/pytest tests/e2e

test: install tools image lint ## the whole suite: lint, unit and e2e tests (e2e runs the image)
	$(VENV)/bin/pytest tests

BENCH_ARGS ?=
bench: install tools ## benchmarks with ratios against in-run baselines (not part of `make test`; BENCH_ARGS="--sizes 1000,10000,50000 --profile")
	$(PY) -m bench.bench_plan
	$(PY) -m bench.bench_engine
	$(PY) -m bench.bench_cluster
	$(PY) -m bench.bench_delivery
	$(PY) -m bench.bench_scale $(BENCH_ARGS)
	$(PY) -m bench.bench_promotion

clean: ## remove the venv and bin/ links (the build cache in ~/.cache stays)
	rm -rf $(VENV) bin
