# The project's own processes (`c2c ...`) for compose.yaml; the services come from their images.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY c2c c2c
COPY producers producers
COPY streams streams
COPY sinks sinks
COPY observability observability
COPY schemas schemas
COPY services services
COPY cli cli
RUN pip install --no-cache-dir -c constraints.txt -e .
ENV C2C_DATA_DIR=/var/lib/c2c
RUN mkdir -p /var/lib/c2c && chown nobody /var/lib/c2c
USER nobody
ENTRYPOINT []
