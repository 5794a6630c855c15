# Stand-in for python:${PYTHON_VERSION}-slim-${DEBIAN_SUITE}: Debian's own CPython of that minor
# version in a venv at /usr/local, so `python`, `python3`, `pip` and console scripts live in
# /usr/local/bin and packages in /usr/local/lib/pythonX.Y/site-packages, as in the official image
# (which compiles CPython into /usr/local). Same runtime packages (ca-certificates, netbase, tzdata),
# LANG and CMD; no USER, like the official image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PYTHON_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" \
        ca-certificates netbase tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && "python${PYTHON_VERSION}" -m venv /usr/local \
    && /usr/local/bin/python3 -c "import sys; assert sys.version.startswith('${PYTHON_VERSION}.'), sys.version"
ENV LANG=C.UTF-8
CMD ["python3"]
