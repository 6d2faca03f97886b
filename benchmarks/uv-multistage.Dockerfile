# The uv multi-stage recipe many guides give: uv installed with pip in the builder, a venv in the
# project directory built with uv (cache mount), the app copied beside it, then the whole project
# directory, venv included, copied into a clean runtime stage.
# Reference for `benchmarks/run.py` (image size), not for use.
# Context: the bundled app plus a requirements.txt (run.py writes one).
ARG BASE=imgtool/python:3.11-bookworm
FROM ${BASE} AS builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
# "pip install uv": the base has no pip module, so pip comes from a throw-away venv.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/uv-installer \
    && /opt/uv-installer/bin/pip install uv \
    && ln -s /opt/uv-installer/bin/uv /usr/local/bin/uv
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=requirements.txt,target=requirements.txt \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    uv venv /app/.venv --python python3 \
    && uv pip install --python /app/.venv/bin/python -r requirements.txt
COPY . /app

FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home app
# The venv lives in /app, so every code change copies the venv again.
COPY --from=builder /app /app
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /app
USER app
EXPOSE 8000
CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "8000", "app:app"]
