# syntax=docker/dockerfile:1
# chatd node image: python slim, non-root, data in the /data volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY chatd ./chatd
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server]"

FROM python:3.11-slim
# /data is the node's alone (0700): a new volume takes its mode from here
RUN useradd --create-home --uid 10001 chatd && mkdir -m 0700 /data && chown chatd /data
# The wheels come in through a bind mount of the build stage: no layer of
# this image holds them (a COPY and a later rm would leave them in one).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "chatd[server]" \
    && rm -rf /root/.cache
USER chatd
# CHATD_IN_CONTAINER: without a cluster secret the node refuses to start
# here (loopback, where it would serve, is reachable from nowhere else).
ENV CHATD_DATA_DIR=/data \
    CHATD_LISTEN=0.0.0.0:50051 \
    CHATD_PEER_LISTEN=0.0.0.0:50052 \
    CHATD_IN_CONTAINER=1
VOLUME ["/data"]
EXPOSE 50051 50052 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["chatd", "health"]
ENTRYPOINT ["chatd"]
CMD ["serve"]
