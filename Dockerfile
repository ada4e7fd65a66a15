# tillgate in a container (docs/install.md#docker): a multi-stage build, a
# non-root user, the data on a volume.
#
#   docker build --build-arg TILLGATE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t tillgate .
#   docker run -d --name tillgate -p 11130:11130 -v tillgate-data:/var/lib/tillgate \
#       -e TILLGATE_API_TOKEN=... tillgate
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The build context has no .git: `tillgate --version` takes the commit from here.
ARG TILLGATE_GIT_COMMIT=unknown
ENV TILLGATE_GIT_COMMIT=${TILLGATE_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tillgate \
    && install -m 0755 target/release/tillgate /tillgate \
    && strip --strip-debug /tillgate

FROM debian:bookworm-slim
# CA certificates for HTTPS destinations (relay, Telegram, SMS providers).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/tillgate \
        --shell /usr/sbin/nologin tillgate \
    && mkdir -p /var/lib/tillgate \
    && chown tillgate:tillgate /var/lib/tillgate
COPY --from=build /tillgate /usr/local/bin/tillgate
USER tillgate
WORKDIR /var/lib/tillgate
VOLUME /var/lib/tillgate
# Listening beyond loopback (as a container must) requires an API token and
# an ingest key: without TILLGATE_API_TOKEN and TILLGATE_INGEST_KEY the
# server refuses to start and says so.
ENV TILLGATE_LISTEN=0.0.0.0:11130 \
    TILLGATE_DATA=/var/lib/tillgate
EXPOSE 11130
# SIGTERM (docker stop) is the graceful stop: give it time to commit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tillgate"]
CMD ["serve"]
