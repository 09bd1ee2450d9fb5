# Set-up and everyday commands. Each target installs what is missing first, so on a
# fresh machine `make app` and `make test` are all you need (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: app classroom dev gallery test test-fast lint format bench world proxy goodhart hab-fixture chromium clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per requirements file: editing a pin reinstalls, nothing else does.
$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.app-installed

## app: install what is missing and start the app on the bundled models, on 127.0.0.1 only
app: $(VENV)/.app-installed
	$(BIN)/python -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

## classroom: the app for a room of students: typed paths confined to assets/, models/, data/, runs/ and
## the bank cache, trust_remote_code off, trainings capped (see README, Security > Classroom mode)
classroom: $(VENV)/.app-installed
	INFALIGN_CLASSROOM=1 $(BIN)/python -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

## dev: the app with Streamlit's file watcher on (reruns on save); costs CPU while a tab is open
dev: $(VENV)/.app-installed
	$(BIN)/python -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.fileWatcherType auto --server.runOnSave true

# Tests run on pytest-xdist workers: many wait on subprocesses, servers and browsers, so more workers than
# the 2 cores of a small machine keep both busy. A module sharing a module-scoped fixture stays on one worker.
TEST_WORKERS ?= 3
XDIST := -n $(TEST_WORKERS) --dist loadgroup

## test: install what is missing (Python packages, Debian's chromium) and run lint + every test
test: $(VENV)/.dev-installed chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(XDIST)

## test-fast: the unit and property tests only (no pages, servers, browsers or slow training), for every commit
test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(XDIST) -m "not slow and not browser and not app" -q

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: run every benchmark (prints ratios, asserts nothing)
bench: $(VENV)/.dev-installed
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## gallery: retrain and re-evaluate the gallery's five runs in assets/gallery (fixed seeds; ~30 min on 2 busy cores)
## (as ctrl.RECOMMENDED_RUN says; GALLERY_STEPS=N overrides its steps)
gallery: $(VENV)/.app-installed
	OMP_NUM_THREADS=2 $(BIN)/python -m infalign_core build-gallery --out assets/gallery $(if $(GALLERY_STEPS),--steps $(GALLERY_STEPS))

## world: rebuild the bundled default world in assets/world (a few minutes on 2 cores)
world: $(VENV)/.app-installed
	$(BIN)/python -m infalign_core build-world --out assets/world

## proxy: rebuild the world's deliberately weak proxy reward in assets/world/proxy (seconds)
proxy: $(VENV)/.app-installed
	OMP_NUM_THREADS=1 $(BIN)/python -c "from infalign_core.proxy import build_proxy; build_proxy()"

## goodhart: the over-optimisation curves on the proxy in assets/goodhart (three short runs; ~40 min on 2 busy cores)
goodhart: $(VENV)/.app-installed
	rm -f assets/goodhart/curves.json
	OMP_NUM_THREADS=1 $(BIN)/python -c "from infalign_core.goodhart import run_experiment; run_experiment(steps=240, every=30)"

## hab-fixture: rewrite the small offline HumanAgencyBench sample in assets/hab (seconds)
hab-fixture: $(VENV)/.app-installed
	$(BIN)/python scripts/make_hab_fixture.py

# The browser test drives Debian's Chromium; install it when apt is at hand (as root or via sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and no apt-get: the browser test will be skipped"; fi; }

clean-venv:
	rm -rf $(VENV)
