# The tests' app container: the node tests' base image plus a virtualenv with the official openai SDK,
# which talks to the injected sidecar on 127.0.0.1:4000 as a user's app would. Built by
# e2e/testenv/images.py from wheels made on the host (no network during the build).
ARG BASE=python:3.11.11-slim-bookworm
FROM ${BASE}
ARG PIP_INSTALL_FLAGS=""
# hadolint ignore=SC2086
RUN python3 -m venv /opt/app \
    && /opt/app/bin/pip install --no-cache-dir $PIP_INSTALL_FLAGS 'openai>=1.40' \
    && /opt/app/bin/pip uninstall --yes pip
ENV PATH=/opt/app/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
