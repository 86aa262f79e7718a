# One image for web, worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LHS_VAR_DIR=/var/lib/lhs
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN DJANGO_SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput \
    && useradd --system --home /app lhs && mkdir -p /var/lib/lhs && chown lhs /var/lib/lhs
USER lhs
EXPOSE 8000
CMD ["gunicorn", "lhs.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
