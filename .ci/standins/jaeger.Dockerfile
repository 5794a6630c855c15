# Stand-in for jaegertracing/jaeger:${VERSION}: the binary .ci/stack-bin builds at that version at
# the official image's path (/cmd/jaeger/jaeger-linux), same ENV, VOLUME, ENTRYPOINT and USER 10001.
# The official image is Alpine-based (busybox `wget`); this one is Debian with busybox for `wget`.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /bin/busybox /usr/local/bin/wget
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 5778 5779 9411 13132 13133 14250 14268 16686
COPY jaeger /cmd/jaeger/jaeger-linux
VOLUME ["/tmp"]
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
USER 10001
