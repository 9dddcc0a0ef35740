# One image for both services. `docker run IMAGE` runs a tracker; `docker run IMAGE run planner` a planner
# (the same `stepout run ...` commands as in the README). Built and run by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install . \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/stepout stepout

# In a container the HTTP port must listen beyond loopback; the data dir is the service user's home.
ENV STEPOUT_HTTP_HOST=0.0.0.0 \
    STEPOUT_DATA_DIR=/var/lib/stepout
USER stepout
WORKDIR /var/lib/stepout
EXPOSE 8081 8082

ENTRYPOINT ["stepout"]
CMD ["run", "tracker"]
