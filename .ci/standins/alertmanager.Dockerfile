# Stand-in for prom/alertmanager:v${VERSION}: the binaries .ci/stack-bin builds at that version, at
# the official image's paths (/bin/alertmanager, /bin/amtool, /etc/alertmanager/alertmanager.yml,
# data in /alertmanager), same WORKDIR, VOLUME, USER nobody, ENTRYPOINT and CMD; Debian with
# busybox providing `wget`, where the official image is busybox-based.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /bin/busybox /usr/local/bin/wget
COPY alertmanager amtool /bin/
COPY alertmanager.yml /etc/alertmanager/alertmanager.yml
RUN mkdir -p /alertmanager \
    && chown -R nobody:nogroup /etc/alertmanager /alertmanager && chmod -R g+w /alertmanager
USER       nobody
EXPOSE     9093
VOLUME     [ "/alertmanager" ]
WORKDIR    /alertmanager
ENTRYPOINT [ "/bin/alertmanager" ]
CMD        [ "--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager" ]
