# Two commands on a fresh machine with Python 3.11+ and make:
#   make run   – the app with a demo division on http://127.0.0.1:8000 (SQLite, no Redis)
#   make test  – the test suite (SQLite by default; PostgreSQL/Redis with DATABASE_URL/REDIS_URL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1:8000

.PHONY: install run worker test lint format bench faults lock messages check clean

$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	@echo "Starting the app on http://$(HOST)/ with a background worker (Ctrl-C stops both)."
	@# The worker and beat each in a loop that starts it again if it stops (beat on its own:
	@# a beat embedded in a worker that was killed lives on and would then run twice).
	@trap 'kill 0' INT TERM EXIT; \
	while true; do \
		DJANGO_DEBUG=1 $(BIN)/celery -A lhs worker --pool=solo --loglevel=WARNING \
			--without-mingle --without-gossip; \
		echo "The background worker stopped ($$?); starting it again in 2 s."; sleep 2; \
	done & \
	while true; do \
		DJANGO_DEBUG=1 $(BIN)/celery -A lhs beat --loglevel=WARNING \
			--schedule=var/celerybeat-schedule; \
		echo "The scheduler (beat) stopped ($$?); starting it again in 2 s."; sleep 2; \
	done & \
	DJANGO_DEBUG=1 $(BIN)/python manage.py runserver $(HOST)

# Tests serve plain HTTP from a live server and need no collectstatic.
test: install
	DJANGO_SECURE_SSL_REDIRECT=0 DJANGO_SECURE_COOKIES=0 LHS_PLAIN_STATIC=1 \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Fault figures (worker killed, Redis restarted, embedded soak) with real processes.
faults: install
	DJANGO_SECURE_SSL_REDIRECT=0 DJANGO_SECURE_COOKIES=0 LHS_PLAIN_STATIC=1 \
		$(BIN)/python -m tests.faults $(FAULTS_ARGS)

# Needs GNU gettext; the compiled .mo files are committed so that a fresh machine needs none.
messages: install
	$(BIN)/python manage.py makemessages -l sv --ignore=.venv --ignore=staticfiles
	$(BIN)/python manage.py compilemessages --ignore=.venv

lock: install
	(echo "# Exact versions of everything the app and its tests need (pip freeze of a working set)."; \
	 echo "# Update: pip install -U <pkg>, run make test, then: make lock"; \
	 $(BIN)/python -m pip freeze | grep -v '^-e') > requirements.lock

clean:
	rm -rf $(VENV) var staticfiles
