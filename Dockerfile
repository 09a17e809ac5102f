# The logisync pipeline image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY operators ./operators
COPY flows ./flows
COPY sources ./sources
COPY sinks ./sinks
COPY simulator ./simulator
COPY web ./web
RUN pip install --no-cache-dir -c constraints.txt .
ENTRYPOINT []
CMD ["logisync", "run"]
