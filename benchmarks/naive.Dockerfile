# A naive single-stage image of the bundled app: a venv, `pip install`, copy the app.
# The common first attempt; reference for `benchmarks/run.py` (image size), not for use.
# Build (context: the bundled app): docker buildx build --load --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#   -f benchmarks/naive.Dockerfile images/app
ARG BASE=imgtool/python:3.11-bookworm
FROM ${BASE}
WORKDIR /app
# The base has no pip module: a venv brings pip (and setuptools) with it.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CA bundle of a TLS-inspecting proxy arrives as a BuildKit secret, never as a layer.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    pip install "litestar>=2.12,<3" "granian>=2.5,<3"
COPY . /app
EXPOSE 8000
CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "8000", "app:app"]
