# Shared by ./crm and .ci/run: settings, logging helpers, and the infrastructure checks.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CRM_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
RUN_DIR="${CRM_RUN_DIR:-$ROOT/run}"

export CRM_AMQP_URI="${CRM_AMQP_URI:-amqp://guest:guest@127.0.0.1:5672/}"
export CRM_RABBIT_API_URI="${CRM_RABBIT_API_URI:-http://guest:guest@127.0.0.1:15672}"
export CRM_PG_HOST="${CRM_PG_HOST:-127.0.0.1}"
export CRM_PG_PORT="${CRM_PG_PORT:-5432}"
export CRM_PG_ADMIN_URL="${CRM_PG_ADMIN_URL:-postgresql+psycopg2://crm_admin:crm_admin@$CRM_PG_HOST:$CRM_PG_PORT/postgres}"
# eventlet announces its own deprecation on every import; it is a known, accepted choice here.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning,ignore::UserWarning:nameko.cli.main}"
export CRM_GATEWAY_PORT="${CRM_GATEWAY_PORT:-8000}"
export CRM_DEMO_PBX="${CRM_DEMO_PBX:-1}"          # 0: no simulated PBX with ./crm up
export CRM_DEMO_PBX_PORT="${CRM_DEMO_PBX_PORT:-5038}"

# name:port of every process `./crm up` starts (the port serves /healthz, /readyz, /metrics).
SERVICES=(directory:8101 clients:8102 deals:8103 telephony:8104 mail:8105 erp_bridge:8106
          reports:8107 payroll:8108 logistics:8109)

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi; }

apt_install() {
  [ -n "${_APT_UPDATED:-}" ] || { as_root apt-get update -qq || die "apt-get update failed"; _APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "could not install $*"
}

pick_python() {
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

ensure_venv() {
  local stamp="$VENV/.installed" python
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ]; then return 0; fi
  python="$(pick_python)" || { apt_install python3 python3-venv python3-pip; python="$(pick_python)" || die "Python 3.11+ is required"; }
  if [ ! -x "$PY" ]; then
    say "creating the virtual environment ($("$python" --version))"
    "$python" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$python" -m venv "$VENV"; } || die "venv failed"
  fi
  say "installing the project and its pinned dependencies"
  "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" || die "pip install failed"
  touch "$stamp"
}

# -- RabbitMQ ----------------------------------------------------------------------------------
amqp_reachable() { "$PY" -m tools.infra amqp-ping >/dev/null 2>&1; }
rabbit_api_reachable() { "$PY" -m tools.infra rabbit-api-ping >/dev/null 2>&1; }

ensure_rabbitmq() {
  if ! amqp_reachable; then
    if ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
      say "installing RabbitMQ from the OS packages"
      apt_install rabbitmq-server
    fi
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    as_root timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
    for _ in $(seq 60); do amqp_reachable && break; sleep 1; done
    amqp_reachable || die "RabbitMQ does not answer at $CRM_AMQP_URI"
  fi
  if ! rabbit_api_reachable; then
    command -v rabbitmq-plugins >/dev/null || die "RabbitMQ management API unreachable at $CRM_RABBIT_API_URI (enable rabbitmq_management on the broker)"
    say "enabling the RabbitMQ management plugin"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null || die "could not enable rabbitmq_management"
    for _ in $(seq 60); do rabbit_api_reachable && break; sleep 1; done
    rabbit_api_reachable || die "RabbitMQ management API does not answer at $CRM_RABBIT_API_URI"
  fi
}

# -- PostgreSQL --------------------------------------------------------------------------------
pg_reachable() { "$PY" -m tools.infra pg-ping >/dev/null 2>&1; }

pg_local_psql() { as_root runuser -u postgres -- psql -qAtX "$@"; }

ensure_postgres() {
  if ! "$PY" -m tools.infra tcp-ping "$CRM_PG_HOST" "$CRM_PG_PORT" >/dev/null 2>&1; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      say "installing PostgreSQL from the OS packages"
      apt_install postgresql postgresql-contrib
    fi
    say "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
    [ -n "$version" ] || die "no PostgreSQL cluster found under /etc/postgresql"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    for _ in $(seq 60); do "$PY" -m tools.infra tcp-ping "$CRM_PG_HOST" "$CRM_PG_PORT" >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! pg_reachable; then
    # The admin role the tools use to create service roles and test databases.
    command -v runuser >/dev/null && id postgres >/dev/null 2>&1 \
      || die "cannot connect as $CRM_PG_ADMIN_URL and PostgreSQL is not local"
    say "creating the PostgreSQL admin role crm_admin"
    pg_local_psql -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='crm_admin') THEN CREATE ROLE crm_admin LOGIN SUPERUSER PASSWORD 'crm_admin'; END IF; END\$\$;" \
      || die "could not create the crm_admin role"
    pg_reachable || die "PostgreSQL does not accept $CRM_PG_ADMIN_URL"
  fi
}

# -- Prometheus (deploy/observability tests) ----------------------------------------------------
# tests/deploy run a private Prometheus (own config, port and storage) from the OS package against
# running services and RabbitMQ's prometheus plugin. Installing the package must not start the
# system service: policy-rc.d refuses it during the install, and systemd hosts disable it after.
export CRM_RABBIT_PROMETHEUS_URI="${CRM_RABBIT_PROMETHEUS_URI:-http://127.0.0.1:15692}"

ensure_prometheus() {
  if [ ! -x /usr/bin/prometheus ]; then
    say "installing Prometheus from the OS packages (the system service stays off)"
    local policy=/usr/sbin/policy-rc.d ours=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# RoofCRM: no service starts while packages install\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod 755 "$policy"; ours=1
    fi
    apt_install prometheus
    if [ -n "$ours" ]; then as_root rm -f "$policy"; fi
    if [ -d /run/systemd/system ]; then as_root systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  fi
  # The broker's queue metrics (depth, consumers) come from its prometheus plugin (port 15692).
  if ! "$PY" -m tools.infra tcp-ping 127.0.0.1 15692 >/dev/null 2>&1 && command -v rabbitmq-plugins >/dev/null; then
    say "enabling the RabbitMQ prometheus plugin"
    as_root rabbitmq-plugins enable rabbitmq_prometheus >/dev/null || die "could not enable rabbitmq_prometheus"
  fi
}

# -- Dovecot (mail tests and bench/mail_sync.py) ---------------------------------------------------
# The mail tests start private Dovecot IMAP instances (tools/dovecot.py: own config, port and
# maildirs); only the binaries are needed. The system service must not start (it would take 143).
ensure_dovecot() {
  if ! command -v dovecot >/dev/null || ! command -v doveadm >/dev/null; then
    say "installing Dovecot IMAP from the OS packages (the system service stays off)"
    local policy=/usr/sbin/policy-rc.d ours=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# RoofCRM: no service starts while packages install\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod 755 "$policy"; ours=1
    fi
    apt_install dovecot-imapd
    if [ -n "$ours" ]; then as_root rm -f "$policy"; fi
    if [ -d /run/systemd/system ]; then as_root systemctl disable --now dovecot >/dev/null 2>&1 || true; fi
  fi
}

# -- Chromium (the browser tests of the gateway's pages, gateway/tests/browser) -------------------
# Debian's chromium and chromium-driver; the tests drive them through selenium with
# /usr/bin/chromedriver, so nothing downloads a browser of its own.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    say "installing Chromium and its WebDriver from the OS packages (browser tests)"
    apt_install chromium chromium-driver
  fi
}

# -- wrk (bench/company.py: the gateway's latency and throughput under 50 connections) ------------
ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    say "installing wrk from the OS packages (HTTP benchmarks)"
    apt_install wrk
  fi
}

ensure_infra() {
  ensure_venv
  ensure_rabbitmq
  ensure_postgres
}
