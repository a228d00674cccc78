# The stream-detector image: the `stream-detector` command line, serving by default.
#
#   docker build -t stream-detector:0.1.0 .
#   docker run --rm -p 9108:9108 -v "$PWD/models:/models:ro" stream-detector:0.1.0 \
#       serve --config /app/configs/detector.yaml --bootstrap-servers broker:9092 --model /models/current
#
# The same image runs every subcommand (train, simulate, score, ...): put it after the image name.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin detector \
    && mkdir -p /app /models /secrets \
    && chown detector:detector /models /secrets

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p stream_detector offline \
    && touch stream_detector/__init__.py offline/__init__.py \
    && pip install . \
    && pip uninstall --yes stream-detector \
    && rm -rf stream_detector offline build ./*.egg-info

# The project itself (no development extras: no embedded broker, no test tools).
COPY stream_detector ./stream_detector
COPY offline ./offline
RUN pip install --no-deps . && rm -rf stream_detector offline build ./*.egg-info
COPY configs ./configs

USER detector
EXPOSE 9108

ENTRYPOINT ["stream-detector"]
CMD ["serve", "--config", "/app/configs/detector.yaml"]
