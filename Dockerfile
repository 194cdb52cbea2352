# syntax=docker/dockerfile:1.7
# The model server image, GPU (default) or CPU, from the same code and the same pinned stack:
#   docker build -t ghcr.io/aistudio/model-server:0.1.0 .
#   docker build --build-arg VARIANT=cpu -t ghcr.io/aistudio/model-server:0.1.0-cpu .
# No model is baked in: in Kubernetes an init container downloads the MLflow bundle into
# /models/bundle; locally, mount one there (docker run -v "$PWD/models/bundle:/models/bundle:ro").

ARG VARIANT=gpu
ARG PYTHON_VERSION=3.11.13
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG CPU_BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.8.0

FROM ${UV_IMAGE} AS uv

# --- one Python 3.11 per variant, at the same paths, so the builder's venv runs in the runtime ---

FROM ${CPU_BASE_IMAGE} AS python-cpu
# PyPI's torch wheel is the CUDA build; the CPU index offers the same version as <version>+cpu,
# which pip prefers, so the CPU image carries no CUDA libraries.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM ${BASE_IMAGE} AS python-gpu
ARG PYTHON_VERSION
# CUDA runtime images ship no Python 3.11: install a relocatable CPython build (the same binary
# on any glibc distro) with uv, which is mounted for this step only and not left in the image.
RUN --mount=from=uv,source=/uv,target=/usr/local/bin/uv \
    UV_PYTHON_INSTALL_DIR=/opt/python uv python install "${PYTHON_VERSION}" \
 && ln -s /opt/python/cpython-"${PYTHON_VERSION}"-linux-*/bin/python3.11 /usr/local/bin/python3.11 \
 && ln -s python3.11 /usr/local/bin/python3 \
 && python3.11 --version

# --- builder: the pinned stack, then the package, into /opt/venv --------------------------------

FROM python-${VARIANT} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
WORKDIR /src
# Requirements first: this layer is rebuilt only when the pinned stack changes, not on every edit.
COPY requirements-mlops.txt constraints.txt ./
RUN pip install -r requirements-mlops.txt -c constraints.txt
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-deps . \
 && python -c "import aistudio"

# --- runtime ------------------------------------------------------------------------------------

FROM python-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="aistudio model server" \
      org.opencontainers.image.description="OpenAI-compatible server for a base model plus LoRA adapters from an MLflow bundle" \
      org.opencontainers.image.source="https://github.com/aistudio/aistudio"
# Offline at run time: everything the server loads comes from the bundle, never from a hub.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/hf \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    TOKENIZERS_PARALLELISM=false \
    AISTUDIO_IMAGE_VARIANT=${VARIANT}
# uid/gid 10001 match runAsUser/runAsGroup in k8s/base/rollout.yaml; the writable paths are the
# ones Kubernetes mounts emptyDirs over (the root filesystem is read-only there).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app /models/bundle /cache/hf \
 && chown -R 10001:10001 /models /cache
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY scripts/ scripts/
USER 10001:10001
EXPOSE 8000
# Docker-level liveness for `docker run` and compose; Kubernetes uses its own probes instead.
# start-period covers model loading, which can take minutes on a cold GPU.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["python", "scripts/serve.py", "--bundle", "/models/bundle", "--host", "0.0.0.0", "--port", "8000"]
