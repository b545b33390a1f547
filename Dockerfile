# The storage example (examples/storage) as an image: one replica per container.
#
#   docker build -t gorums-mw-storage:0.1.0 .
#   docker run --rm gorums-mw-storage:0.1.0          # the 3-replica demo, in one container
#   docker run gorums-mw-storage:0.1.0 --id 1 --listen 0.0.0.0:9001 \
#       --nodes 1=store-0.store:9001,2=store-1.store:9001,3=store-2.store:9001
#
# deploy/kubernetes/ runs it as a StatefulSet. .dockerignore lets in only
# what the image needs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The library, installed with pip from the repository's own sources
# (interceptors/ installs as gorums_mw.interceptors: copy both).
COPY pyproject.toml README.md LICENSE /src/
COPY gorums_mw/ /src/gorums_mw/
COPY interceptors/ /src/interceptors/
RUN pip install /src && rm -rf /src

# The example runs from the source tree: python -m examples.storage.
WORKDIR /app
COPY examples/ /app/examples/

USER 10001:10001
EXPOSE 9001
ENTRYPOINT ["python", "-m", "examples.storage"]
