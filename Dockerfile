# One image for every process of the system: Daphne (web), Celery worker, Celery beat.
# The RTSP relay runs inside Daphne; GDAL/GEOS/PROJ come from Debian as on bare metal.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgdal32 postgresql-client ffmpeg \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /app --shell /usr/sbin/nologin safenet
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Static files are collected at build time and served by WhiteNoise (or the proxy).
RUN SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --noinput -v0
USER safenet
EXPOSE 8000
# No access log: share links carry their token in the path (nginx logs the rest).
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "-v", "0", "smartcity.asgi:application"]
