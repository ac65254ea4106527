# syntax=docker/dockerfile:1.7
# One image for every gridts process:
#   API:     docker run IMAGE                    -> python -m app
#   ingest:  docker run IMAGE ingest load SRC... -> python -m ingest load SRC...
# The ENTRYPOINT is `python -m`, so the first argument names the module to run; the Helm chart's
# containers pass exactly these arguments (tests/chart checks that they agree).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install the locked dependencies, then the project, into a venv -------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/gridts/venv
RUN pip install "uv==${UV_VERSION}"
WORKDIR /src

# Dependencies first, from the lock file alone: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11

# Then the project itself, installed as a regular (non-editable) package.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python3.11

# ---- runtime: the same Python, the venv, a numeric non-root user; no pip, uv or compilers --------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gridts \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gridts \
    && { python -m pip uninstall --yes --quiet pip setuptools wheel || true; }
COPY --from=build --chown=0:0 /opt/gridts/venv /opt/gridts/venv
ENV PATH=/opt/gridts/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_PORT=8000
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python", "-m"]
CMD ["app"]
