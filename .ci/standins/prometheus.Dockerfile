# Stand-in for prom/prometheus:v${VERSION}: the binaries .ci/stack-bin builds at that version, at
# the official image's paths (/bin/prometheus, /bin/promtool, /etc/prometheus/prometheus.yml, data
# in /prometheus), same WORKDIR, VOLUME, USER nobody, ENTRYPOINT and CMD. The official image is
# busybox-based; this one is Debian with busybox providing the `wget` its users' healthchecks call.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /bin/busybox /usr/local/bin/wget
COPY prometheus promtool /bin/
COPY prometheus.yml /etc/prometheus/prometheus.yml
WORKDIR /prometheus
RUN chown -R nobody:nogroup /etc/prometheus /prometheus && chmod g+w /prometheus
USER       nobody
EXPOSE     9090
VOLUME     [ "/prometheus" ]
ENTRYPOINT [ "/bin/prometheus" ]
CMD        [ "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus" ]
