# The two commands a user needs: `make serve` and `make test`. Both install first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install sandbox-tools console-tools serve test check generate bench bench-full clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory sandbox-tools
	touch $(STAMP)

install: $(STAMP) sandbox-tools

# Issue 9: pods run inside bubblewrap, Debian's package (kept patched by the system's security updates, unlike a
# wheel bundling a copy); the sandbox tests build an image from busybox-static. Installed when missing and this
# is root with apt-get; otherwise one line says how.
sandbox-tools:
	@if command -v bwrap >/dev/null && command -v busybox >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq bubblewrap busybox-static >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq bubblewrap busybox-static >/dev/null; }; \
	else echo "pods run in a sandbox: install it with: sudo apt-get install bubblewrap busybox-static"; fi

# Issue 11: the console's browser tests drive Debian's chromium through chromium-driver (never a downloaded browser).
# Installed when missing and this is root with apt-get; otherwise one line says how (the tests then skip).
console-tools:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; \
	else echo "the console's browser tests need: sudo apt-get install chromium chromium-driver"; fi

serve: $(STAMP)
	$(BIN)/tione-server serve --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/gen_api.py --check
	$(BIN)/python scripts/gen_console.py --check

generate: $(STAMP)
	$(BIN)/python scripts/gen_api.py
	$(BIN)/python scripts/gen_console.py

bench: $(STAMP)
	$(BIN)/python -m bench --quick

bench-full: $(STAMP)
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
