# pecflow — everything runs from a fresh Debian machine with these targets.
# `make demo` and `make test` install what they need (venvs, Python packages, Debian packages).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help demo test test-fast lint bench bench-quick sam-build clean debian-packages

help:
	@echo "make demo        a day of two companies' PEC mailboxes on the local stack (campaign, receipts, inbox)"
	@echo "make test        lint the SAM template and run the whole test suite"
	@echo "make test-fast   unit tests only"
	@echo "make lint        ruff (lint + format), mypy, cfn-lint + sam validate --lint on template.yaml"
	@echo "make bench       run every benchmark under bench/ (QUICK=1 for the short form)"
	@echo "make sam-build   sam build (needs python3.12 on PATH, or pyenv)"

# --- environments -------------------------------------------------------------------------
$(VENV)/.installed: requirements/dev.txt shared/pyproject.toml
	@test -x "$(PYTHON)" || { echo "python3 not found: apt-get install -y python3 python3-venv" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		{ echo "installing python3-venv"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -r requirements/dev.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e shared
	@touch $@

# aws-sam-cli pins boto3, click and pydantic tightly: it lives in a venv of its own
$(SAM_VENV)/.installed: requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(SAM_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements/sam.txt
	@touch $@

# Debian packages the local stack runs: Dovecot (the IMAP server), openssl (signature checks),
# poppler-utils (pdftotext reads back the PDFs campaigns generate)
debian-packages:
	@missing=""; \
	command -v dovecot >/dev/null || test -x /usr/sbin/dovecot || missing="$$missing dovecot-imapd"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# --- the two README commands ---------------------------------------------------------------
demo: $(VENV)/.installed debian-packages
	$(PY) -m local.demo

# the suite runs on every core (2 on CI); `make test JOBS=1` runs it in one process
JOBS ?= auto
test: $(VENV)/.installed debian-packages lint
	$(PY) -m pytest -q -n $(JOBS) --dist load

# --- the rest ------------------------------------------------------------------------------
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

lint: $(VENV)/.installed $(SAM_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml

bench: $(VENV)/.installed
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b $(if $(QUICK),--quick,); done

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

sam-build: $(SAM_VENV)/.installed
	PYENV_VERSION=$${PYENV_VERSION:-3.12.1:3.11.7} $(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .hypothesis .bench

# --- deploying (samconfig.toml) ------------------------------------------------------------
# `make deploy`: sam build, then the first deployment of an environment is guided (stack name,
# region, parameters: saved to samconfig.toml); once samconfig.toml names its stack, plain
# `sam deploy`. Another environment: `make deploy SAM_ENV=prod`.
SAM_ENV ?= default
.PHONY: deploy
deploy: sam-build
	@configured=$$($(SAM_VENV)/bin/python -c 'import os, sys, tomllib; \
		config = tomllib.load(open("samconfig.toml", "rb")) if os.path.exists("samconfig.toml") else {}; \
		env = config.get(sys.argv[1], {}); \
		names = [env.get(part, {}).get("parameters", {}).get("stack_name") for part in ("deploy", "global")]; \
		print("yes" if any(names) else "no")' $(SAM_ENV)) || exit 1; \
	if [ "$$configured" = yes ]; then \
		$(SAM_VENV)/bin/sam deploy --config-env $(SAM_ENV); \
	else \
		echo "first deployment of '$(SAM_ENV)': sam asks for the stack name, the region and the parameters, and saves them in samconfig.toml"; \
		$(SAM_VENV)/bin/sam deploy --guided --config-env $(SAM_ENV); \
	fi
