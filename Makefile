# Two commands for a newcomer: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SIM_PORT ?= 8900

# The first interpreter that is Python 3.12 or newer.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# Demo environment for `make run`: everything points at the embedded simulator.
DEMO_ENV := DEBUG=1 \
	DASHBOARD_BASE_URL=$${DASHBOARD_BASE_URL:-http://127.0.0.1:$(PORT)} \
	DASHBOARD_DEV_USER=$${DASHBOARD_DEV_USER:-demo} \
	DASHBOARD_DEV_GROUPS=$${DASHBOARD_DEV_GROUPS:-dashboard-admins} \
	DASHBOARD_DEV_SECOND_USER=$${DASHBOARD_DEV_SECOND_USER:-second.approver} \
	HUAWEICLOUD_SDK_AK=$${HUAWEICLOUD_SDK_AK:-DEMOACCESSKEYID0000} \
	HUAWEICLOUD_SDK_SK=$${HUAWEICLOUD_SDK_SK:-demo-secret-access-key} \
	HUAWEICLOUD_SDK_PROJECT_ID=$${HUAWEICLOUD_SDK_PROJECT_ID:-0123456789abcdef0123456789abcdef} \
	HUAWEICLOUD_WORKSPACEAPP_ENDPOINT=http://127.0.0.1:$(SIM_PORT) \
	HUAWEICLOUD_WORKSPACE_ENDPOINT=http://127.0.0.1:$(SIM_PORT) \
	HUAWEICLOUD_IMS_ENDPOINT=http://127.0.0.1:$(SIM_PORT) \
	HUAWEICLOUD_IAM_ENDPOINT=http://127.0.0.1:$(SIM_PORT) \
	CLOUD_PROJECTS_FILE=$${CLOUD_PROJECTS_FILE-dashboard/demo_projects.toml} \
	DEMO_BEIJING_AK=$${DEMO_BEIJING_AK:-DEMOBEIJINGKEY00000} \
	DEMO_BEIJING_SK=$${DEMO_BEIJING_SK:-demo-beijing-secret} \
	DEMO_SINGAPORE_AK=$${DEMO_SINGAPORE_AK:-DEMOSINGAPOREKEY000} \
	DEMO_SINGAPORE_SK=$${DEMO_SINGAPORE_SK:-demo-singapore-secret}

.PHONY: run test lint format bench clean screenshots

$(VENV)/.python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@touch $@

$(VENV)/.runtime: $(VENV)/.python requirements.txt
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime
	@mkdir -p var
	@$(DEMO_ENV) $(PY) manage.py migrate --no-input -v 0
	@$(DEMO_ENV) $(PY) manage.py compiletranslations >/dev/null
	@$(DEMO_ENV) PORT=$(PORT) SIM_PORT=$(SIM_PORT) $(PY) manage.py serve

test: $(VENV)/.dev
	@mkdir -p var
	@DEBUG=1 $(PY) manage.py compiletranslations >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --cache-dir var/import-linter-cache
	DEBUG=1 $(PY) manage.py checktranslations

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	$(PY) -m bench $(BENCH_ARGS)

# Refresh docs/screenshots/ on purpose (tests write theirs under var/): the rollout page at
# 1440 and 390 px wide, from the browser test that drives a real rollout, in Simplified
# Chinese at 1440 px (Chinese text needs a CJK font: apt-get install fonts-noto-cjk), and the
# overview of two projects.
screenshots: $(VENV)/.dev
	@mkdir -p var
	@DEBUG=1 $(PY) manage.py compiletranslations >/dev/null
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider \
		tests/browser/test_rollout_flow.py tests/browser/test_zh_hans.py \
		tests/browser/test_project_pages.py::test_the_pages_show_the_project_column_and_the_failing_project

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
