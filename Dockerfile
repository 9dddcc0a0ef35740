# One image for the services and the console. `docker run IMAGE` runs a tracker; `docker run IMAGE run planner`
# a planner, `docker run IMAGE run console` the console (the same `stepout run ...` commands as in the README).
# Built and run by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only locked packages, each file checked against its hash (requirements/*.txt, written by `make lock`): the build
# tools, then the runtime dependencies (a package without a wheel is built by the locked setuptools, not by one
# fetched for the build), then stepout itself without dependencies. The dependencies' layer outlives code changes.
COPY requirements/build.txt requirements/runtime.txt ./requirements/
RUN pip install --require-hashes --no-deps -r requirements/build.txt \
    && pip install --require-hashes --no-deps --no-build-isolation -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/stepout stepout \
    && chmod 700 /var/lib/stepout

# In a container the HTTP port must listen beyond loopback; the data dir is the service user's home, its own only
# (stepout refuses a data directory others may read).
ENV STEPOUT_HTTP_HOST=0.0.0.0 \
    STEPOUT_DATA_DIR=/var/lib/stepout
USER stepout
WORKDIR /var/lib/stepout
EXPOSE 8081 8082 8083

ENTRYPOINT ["stepout"]
CMD ["run", "tracker"]
