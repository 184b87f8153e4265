# rfr: one image for the web process and the Celery worker (docker-compose.yml runs both).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RFR_DATA_DIR=/data

# OpenCV needs these shared libraries even in its headless use.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml ./
COPY rfr ./rfr
COPY faceengine ./faceengine
COPY accounts ./accounts
COPY audit ./audit
COPY cases ./cases
COPY search ./search
COPY bench ./bench
COPY templates ./templates
COPY static ./static
COPY manage.py ./
# Editable install: the apps run from /app, where manage.py, templates and static files are.
RUN pip install -e . "gunicorn>=22,<24"

RUN useradd --system --uid 10001 --home-dir /app rfr \
    && mkdir -p /data \
    && chown rfr /data
USER rfr
VOLUME ["/data"]
EXPOSE 8000

# --limit-request-* bound the request line and headers; the body cap (40 MB upload + 1 MB) is rfr/wsgi.py's.
CMD ["gunicorn", "rfr.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120", \
     "--limit-request-line", "8190", "--limit-request-fields", "100", "--limit-request-field_size", "8190"]
