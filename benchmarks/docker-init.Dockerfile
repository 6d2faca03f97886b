# The shape `docker init` generates for a Python project: one stage, a pip cache mount, the
# requirements bind-mounted, a non-root user, the app copied last.
# Reference for `benchmarks/run.py` (cold build time, time to first 200), not for use.
# Context: the bundled app plus a requirements.txt (run.py writes one).
ARG BASE=imgtool/python:3.11-bookworm
FROM ${BASE} AS base

# Prevents Python from writing pyc files; keeps stdout/stderr unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1
ENV PYTHONUNBUFFERED=1

WORKDIR /app

# Create a non-privileged user that the app will run under.
ARG UID=10001
RUN adduser \
    --disabled-password \
    --gecos "" \
    --home "/nonexistent" \
    --shell "/sbin/nologin" \
    --no-create-home \
    --uid "${UID}" \
    appuser

# docker init installs into the image's Python with its pip; this base has no pip module, so a venv.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Download dependencies as a separate step to take advantage of Docker's caching: a cache mount
# for pip's downloads and a bind mount of requirements.txt, so it is not copied into this layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=requirements.txt,target=requirements.txt \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python -m pip install -r requirements.txt

# Switch to the non-privileged user to run the application.
USER appuser

# Copy the source code into the container.
COPY . .

EXPOSE 8000

CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "8000", "app:app"]
