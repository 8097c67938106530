# sliceofml: every target uses only the Python standard library and talks only to 127.0.0.1.
PYTHON ?= python3
PREFIX ?= $(HOME)/.local

.PHONY: test
.PHONY: test-one
.PHONY: demo
.PHONY: bench
.PHONY: lint
.PHONY: install

# The suite on every CPython 3.8 to 3.13 found on PATH and under $(pyenv root)/versions.
test:
	$(PYTHON) test_sliceofml.py --all-pythons

# The suite on $(PYTHON) alone, for a quick check while editing.
test-one:
	$(PYTHON) test_sliceofml.py

# The weekly table from a fake X API on 127.0.0.1, with a throwaway HOME.
demo:
	$(PYTHON) test_sliceofml.py demo

# Start-up, concurrent fetch and rendering figures against the fake X API.
bench:
	$(PYTHON) test_sliceofml.py bench

# Byte-compiles both files and runs the doctests.
lint:
	$(PYTHON) -m py_compile sliceofml.py test_sliceofml.py
	$(PYTHON) -m doctest sliceofml.py

install:
	mkdir -p "$(PREFIX)/bin"
	cp sliceofml.py "$(PREFIX)/bin/sliceofml"
	chmod 755 "$(PREFIX)/bin/sliceofml"
	@echo "installed $(PREFIX)/bin/sliceofml"
