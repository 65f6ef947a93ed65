# pecflow — everything runs from a fresh Debian machine with these targets.
# `make demo` and `make test` install what they need: Python 3.12 (through pyenv when missing), the
# venvs from the hashed lock files in requirements/, and the Debian packages of the local stack.

SHELL := /bin/bash
# The Lambda runtime's Python (template.yaml: Runtime python3.12): venvs, tests, benches, demo, sam build.
PYTHON_VERSION := 3.12
# The unit suite runs on this one too: its standard library parses e-mail addresses more strictly.
NEXT_PYTHON_VERSION := 3.13
VENV := .venv
NEXT_VENV := .venv-py313
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
LOCK_VENV := .venv-lock
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export SAM_CLI_TELEMETRY := 0

.PHONY: help demo test test-next test-fast lint bench bench-quick sam-build lock clean debian-packages \
	venv next-venv sam-venv lock-venv console fuzz reliability checkov checkov-venv soak

help:
	@echo "make demo        a day of two companies' PEC mailboxes on the local stack (campaign, receipts, inbox)"
	@echo "make test        lint, then the whole suite on Python $(PYTHON_VERSION) (the Lambda runtime's)"
	@echo "make test-next   the unit suite on Python $(NEXT_PYTHON_VERSION) (the next runtime: not part of make test)"
	@echo "make test-fast   unit tests only"
	@echo "make lint        ruff (lint + format), mypy, cfn-lint + sam validate --lint on template.yaml"
	@echo "make bench       run every benchmark under bench/ (QUICK=1 for the short form)"
	@echo "make soak        N messages received and an N-recipient campaign at once, the inbox worked (N=20000; QUICK=1)"
	@echo "make sam-build   sam build, for the Lambda runtime (Python $(PYTHON_VERSION), arm64)"
	@echo "make deploy      sam build, then sam deploy to your AWS account (guided the first time: samconfig.toml)"
	@echo "make console     build the web console (console/: npm ci, then vite) into console/dist"
	@echo "make deploy-console  the built console into the stack's bucket behind CloudFront, config.json from its outputs"
	@echo "make fuzz        every fuzz target under fuzz/ for SECONDS=N each (atheris on x86_64, hypothesis elsewhere)"
	@echo "make reliability the fault matrix: a fault at every boundary of the local stack, the invariants after each (a table)"
	@echo "make checkov     checkov's security checks on template.yaml (its own venv, .venv-checkov)"
	@echo "make lock        recompile the hashed lock files from their .in sources (UPGRADE=all or UPGRADE='pkg ...')"

# --- environments -------------------------------------------------------------------------
# tools/venv finds the Python asked (tools/find-python: PATH, pyenv, `pyenv install`), and builds the
# venv again whenever its interpreter or its lock file changed; otherwise it only says it is up to date.
venv:
	@tools/venv $(VENV) $(PYTHON_VERSION) requirements/dev.txt shared

next-venv:
	@tools/venv $(NEXT_VENV) $(NEXT_PYTHON_VERSION) requirements/dev.txt shared

# aws-sam-cli pins boto3, click and pydantic tightly: it lives in a venv of its own
sam-venv:
	@tools/venv $(SAM_VENV) $(PYTHON_VERSION) requirements/sam.txt

# checkov pins boto3, networkx, pydantic and many more tightly: a venv of its own too
checkov-venv:
	@tools/venv $(CHECKOV_VENV) $(PYTHON_VERSION) requirements/checkov.txt

# uv, the lock compiler, at the version pinned in requirements/uv.in
lock-venv:
	@tools/venv $(LOCK_VENV) $(PYTHON_VERSION) requirements/uv.txt

# Debian packages the local stack runs: Dovecot (the IMAP server), openssl (signature checks),
# poppler-utils (pdftotext reads back the PDFs campaigns generate), chromium (the browser tests),
# Node.js and npm (the console's build) when the machine has none
debian-packages:
	@missing=""; \
	command -v dovecot >/dev/null || test -x /usr/sbin/dovecot || missing="$$missing dovecot-imapd"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# --- the two README commands ---------------------------------------------------------------
demo: venv debian-packages console
	$(PY) -m local.demo

# the suite runs on every core (2 on CI); `make test JOBS=1` runs it in one process
JOBS ?= auto
test: venv debian-packages console lint
	@echo "== the whole suite (unit, integration, end to end, browser) on Python $(PYTHON_VERSION), in $(VENV)"
	$(PY) -m pytest -q -n $(JOBS) --dist load --durations=30

# the next Lambda runtime's Python: the unit suite, apart (the whole suite must stay under 10 minutes)
test-next: next-venv
	@echo "== the unit suite on Python $(NEXT_PYTHON_VERSION), in $(NEXT_VENV)"
	$(NEXT_VENV)/bin/python -m pytest -q -n $(JOBS) --dist load tests/unit

# --- the web console ---------------------------------------------------------------------------
# console/: Vite + Preact, its packages pinned by console/package-lock.json (npm ci installs exactly
# those, checked against their integrity hashes); built into console/dist, which the local stack serves.
# npm ci runs again only when the lock file changed since the last install.
console: debian-packages
	@command -v npm >/dev/null || { echo "make console needs Node.js (20 or later) and npm: apt-get install nodejs npm" >&2; exit 1; }
	@lock=$$(sha256sum <console/package-lock.json | cut -c1-64); \
	if [ "$$(cat console/node_modules/.pecflow-lock 2>/dev/null)" != "$$lock" ]; then \
		echo "== console: npm ci (console/package-lock.json)"; \
		(cd console && npm ci --no-audit --no-fund --loglevel=error) && echo "$$lock" >console/node_modules/.pecflow-lock; \
	else echo "== console/node_modules: up to date (console/package-lock.json)"; fi
	@echo "== console: vite build into console/dist"
	@cd console && npm run --silent build -- --logLevel warn

# --- the rest ------------------------------------------------------------------------------
test-fast: venv
	$(PY) -m pytest -q tests/unit

lint: venv sam-venv
	@echo "== lint: ruff, mypy, cfn-lint and sam validate"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml

bench: venv
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b $(if $(QUICK),--quick,); done

# every target under fuzz/ for SECONDS each (atheris where it is installed, else hypothesis), each input
# bounded in time and memory; a crash is saved under .fuzz/crashes/ and fails the run
SECONDS ?= 60
fuzz: venv
	$(PY) -m fuzz --seconds $(SECONDS) $(if $(TARGET),--target $(TARGET),)

# the fault matrix (tests/reliability): one cell per fault at a boundary of the local stack (IMAP, SMTP,
# S3, DynamoDB, SQS, Lambda, Cognito/API, TSA), the same invariants checked after each, printed as a
# table at the end. Part of `make test` too (the table prints at its end); alone: 50 s on 2 idle cores, one real IMAP timeout included.
reliability: venv debian-packages
	$(PY) -m pytest -q -n $(JOBS) --dist load tests/reliability

# checkov on template.yaml: clean, or each skipped check justified in the template (Metadata: checkov)
checkov: checkov-venv
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

# the soak on the local stack: N received and an N-recipient campaign at once (default 20,000 each;
# hours at today's rates: bench/soak.py's docstring), the invariants checked, the figures printed
soak: venv
	@$(PY) bench/soak.py $(if $(QUICK),--quick,) $(if $(N),-n $(N),) $(if $(PROFILE),--profile,)

# sam build finds `python3.12` on PATH: the interpreter tools/find-python chose comes first
sam-build: sam-venv
	@py=$$(tools/find-python $(PYTHON_VERSION)) && \
	echo "== sam build with $$py (the layer from layers/deps/requirements.txt, hashes checked)" && \
	PATH="$$(dirname "$$py"):$$PATH" $(SAM_VENV)/bin/sam build

# --- lock files ------------------------------------------------------------------------------
# Each X.in lists what we use directly; X.txt is compiled from it by uv: every package pinned with the
# sha256 of each of its files, one universal file for every platform and Python >= 3.12. Installs use
# `pip install --require-hashes`. `make lock` keeps the current pins and adds what an .in gained;
# UPGRADE=all moves everything to the newest versions, UPGRADE='jinja2 moto' only those.
# The deps layer is compiled against the dev lock, so its pins are the dev lock's (tests/unit/test_locks.py).
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version $(PYTHON_VERSION) \
	--generate-hashes --custom-compile-command "make lock" \
	$(if $(filter all,$(UPGRADE)),--upgrade,$(addprefix --upgrade-package ,$(UPGRADE)))
LOCK_PLATFORMS := x86_64-manylinux_2_28 aarch64-manylinux_2_28

lock: lock-venv
	@echo "== requirements/dev.txt from requirements/dev.in (which includes layers/deps/requirements.in)"
	$(UV_COMPILE) requirements/dev.in -o requirements/dev.txt
	@echo "== layers/deps/requirements.txt from layers/deps/requirements.in, at the dev lock's versions"
	$(UV_COMPILE) layers/deps/requirements.in -c requirements/dev.txt -o layers/deps/requirements.txt
	@echo "== requirements/sam.txt, uv.txt (the compiler) and pip.txt (the installer)"
	$(UV_COMPILE) requirements/sam.in -o requirements/sam.txt
	$(UV_COMPILE) requirements/checkov.in -o requirements/checkov.txt
	$(UV_COMPILE) requirements/uv.in -o requirements/uv.txt
	$(UV_COMPILE) requirements/pip.in -o requirements/pip.txt
	@echo "== every pin has a wheel for Linux x86_64 and aarch64 on Python $(PYTHON_VERSION) and $(NEXT_PYTHON_VERSION)"
	@set -e; for lock in requirements/dev requirements/sam layers/deps/requirements; do \
		for platform in $(LOCK_PLATFORMS); do for version in $(PYTHON_VERSION) $(NEXT_PYTHON_VERSION); do \
			$(LOCK_VENV)/bin/uv pip compile --quiet --no-header --no-annotate --only-binary :all: \
				--python-platform $$platform --python-version $$version $$lock.in -c $$lock.txt >/dev/null \
			|| { echo "$$lock.txt: no wheel for $$platform, Python $$version (see above)" >&2; exit 1; }; \
		done; done; echo "   $$lock.txt: ok"; \
	done
	@$(MAKE) --no-print-directory venv
	@echo "== the deps layer's pins are the dev lock's, and it carries no AWS SDK"
	$(PY) -m pytest -q tests/unit/test_locks.py

clean:
	rm -rf $(VENV) $(NEXT_VENV) $(SAM_VENV) $(CHECKOV_VENV) $(LOCK_VENV) .aws-sam .pytest_cache .hypothesis .bench .fuzz

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

# --- the web console in AWS ---------------------------------------------------------------------
# `make deploy-console` (after `make deploy`): builds the console, puts console/dist into the stack's
# ConsoleBucket with config.json written from its outputs (ApiUrl, UserPoolClientId), and has
# CloudFront forget the old index.html and config.json. The stack and region are samconfig.toml's
# (SAM_ENV), or STACK=name REGION=region.
.PHONY: deploy-console
deploy-console: venv console
	@$(PY) tools/deploy_console.py --config-env $(SAM_ENV) $(if $(STACK),--stack $(STACK)) $(if $(REGION),--region $(REGION))
