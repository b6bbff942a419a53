# The fedbroker image: one CLI (`fedbroker ...`) for broker workers, connectors and
# subscribers. Build from the repository root: docker build -t fedbroker:0.2.0 .
FROM python:3.11-slim

# A fixed non-root user, so mounted secrets can be made readable to it alone
# (deploy/compose/credentials.py and the Kubernetes securityContext use 10001).
RUN useradd --uid 10001 --create-home --home-dir /var/lib/fedbroker fedbroker
WORKDIR /opt/fedbroker
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY consent/ consent/
COPY connectors/ connectors/
COPY broker/ broker/
COPY subscriber/ subscriber/
COPY fedbroker/ fedbroker/
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER 10001
ENV FEDBROKER_HOME=/var/lib/fedbroker PYTHONUNBUFFERED=1
ENTRYPOINT ["fedbroker"]
CMD ["--help"]
