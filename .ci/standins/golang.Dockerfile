# Stand-in for golang:${GOLANG_VERSION}-${DEBIAN_SUITE}: the Go distribution of this machine
# (checked to be ${GOLANG_VERSION}.x) at /usr/local/go with GOPATH /go, PATH, GOTOOLCHAIN=local and
# WORKDIR as in the official image. Of the official image's build tools only git and
# ca-certificates are added: our builds set CGO_ENABLED=0 and need no C toolchain.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
ENV GOTOOLCHAIN=local \
    GOPATH=/go \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version
WORKDIR /go
