# ToonCrafter Studio — the two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= gui,dev,tooncrafter,farm,cluster,package,editorial

export QT_QPA_PLATFORM ?= $(if $(DISPLAY)$(WAYLAND_DISPLAY),,offscreen)

.PHONY: run test lint bench sample screenshots package clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

run: $(STAMP)
	@$(BIN)/python tools/check_system.py
	$(BIN)/tooncrafter-studio

lint: $(STAMP)
	$(BIN)/ruff check tooncrafter_studio tests benchmarks tools
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks $(BENCH)

sample: $(STAMP)
	$(BIN)/python tools/make_sample_shot.py

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tools/screenshots.py

# The app bundle for this platform (no torch): dist/tooncrafter-studio/ (+ .app on macOS).
# Then packaging/linux/build_appimage.sh, or iscc packaging/windows/tooncrafter-studio.iss.
package: $(STAMP)
	$(BIN)/python -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/tooncrafter_studio.spec
	@du -sh dist/tooncrafter-studio

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
