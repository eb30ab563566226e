# chatd node image: python slim, non-root, data in the /data volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY chatd ./chatd
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 chatd && mkdir /data && chown chatd /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels /root/.cache
USER chatd
ENV CHATD_DATA_DIR=/data \
    CHATD_LISTEN=0.0.0.0:50051 \
    CHATD_PEER_LISTEN=0.0.0.0:50052
VOLUME ["/data"]
EXPOSE 50051 50052
ENTRYPOINT ["chatd"]
CMD ["serve"]
