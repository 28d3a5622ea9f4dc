# Shared setup steps for scripts/*.sh. Each step is idempotent.

MOTO_VERSION="5.2.5"
# Builds Python monitors into components (guests/python/build.sh); 0.25.1 targets WASI 0.2.9,
# which wasmtime-wasi 48 links.
COMPONENTIZE_PY_VERSION="0.25.1"

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
  fi
}

# The project's venv: moto[server] for the tests, componentize-py for Python guests.
ensure_venv() {
  if [[ ! -x .venv/bin/moto_server ]] || ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '${MOTO_VERSION}')" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet "moto[server]==${MOTO_VERSION}"
  fi
  ensure_componentize_py
}

ensure_componentize_py() {
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  if [[ "$(.venv/bin/componentize-py --version 2>/dev/null)" != "componentize-py ${COMPONENTIZE_PY_VERSION}" ]]; then
    .venv/bin/pip install --quiet "componentize-py==${COMPONENTIZE_PY_VERSION}"
  fi
}

# componentize-js for JavaScript guests (guests/js/build.sh), pinned in guests/js/package.json
# and package-lock.json, installed into guests/js/node_modules. Needs Node.js 18+ and npm.
ensure_componentize_js() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "Node.js 18+ and npm are needed to build the JavaScript guests" >&2
    return 1
  fi
  # node_modules is what the lock file says once `npm ci` has run with it: the lock file's copy
  # marks that.
  if ! cmp -s guests/js/package-lock.json guests/js/node_modules/.installed-lock.json; then
    (cd guests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock.json)
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts moto on a free loopback port and waits (at most 60 s) until it answers.
start_moto() {
  MOTO_PORT=$(free_port)
  mkdir -p target
  .venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" > target/moto.log 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 600); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:${MOTO_PORT}/moto-api/', timeout=1)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto exited at start; its log:" >&2
      cat target/moto.log >&2
      return 1
    fi
    sleep 0.1
  done
  echo "moto did not answer on port ${MOTO_PORT} within 60 s" >&2
  return 1
}

stop_moto() {
  if [[ -n "${MOTO_PID:-}" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}

# PostgreSQL for the issue-store tests: Debian's server package, a throw-away data directory
# and a free loopback port. Installs the package when no server binary is present.
ensure_postgres() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
}

# promtool for the alerting-rule tests (tests/monitoring.rs): Debian's prometheus package,
# installed when missing. Only the tool is used; no Prometheus server is started.
ensure_promtool() {
  if ! command -v promtool >/dev/null; then
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
}

# PostgreSQL refuses to run as root: as root, run its tools as the package's `postgres` user.
as_postgres() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Starts PostgreSQL and exports SENTINELA_TEST_DATABASE_URL (superuser `sentinela`, trust
# authentication on loopback only, database `postgres`).
start_postgres() {
  ensure_postgres
  PG_PORT=$(free_port)
  PG_DIR="$(mktemp -d /tmp/sentinela-pg.XXXXXX)"
  chmod 755 "$PG_DIR"
  [[ "$(id -u)" != 0 ]] || chown postgres: "$PG_DIR"
  as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U sentinela --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    return 1
  }
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200" start >/dev/null || {
    cat "$PG_DIR/server.log" >&2
    return 1
  }
  export SENTINELA_TEST_DATABASE_URL="postgres://sentinela@127.0.0.1:${PG_PORT}/postgres"
}

stop_postgres() {
  if [[ -n "${PG_DIR:-}" && -d "$PG_DIR/data" ]]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

# OCI registries for the plugin-registry tests: Debian's docker-registry package (the CNCF
# distribution server), installed if missing with apache2-utils (htpasswd), on free loopback
# ports, plain HTTP. One is open; one wants a login (basic auth, htpasswd file).
ensure_registry() {
  if ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; then
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-registry apache2-utils >/dev/null
  fi
}

# Starts one registry in $REGISTRY_DIR/NAME on a free port; prints the port. $3: an htpasswd
# file to require a login from (optional).
start_one_registry() {
  local name="$1" port="$2" htpasswd="${3:-}"
  local dir="$REGISTRY_DIR/$name"
  mkdir -p "$dir/data"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$port}"
    if [[ -n "$htpasswd" ]]; then
      echo "auth: {htpasswd: {realm: sentinela-tests, path: $htpasswd}}"
    fi
  } > "$dir/config.yml"
  docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 600); do
    local code
    code=$(python3 -c "
import urllib.request, urllib.error, sys
try:
    print(urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=1).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)")
    if [[ "$code" == 200 || "$code" == 401 ]]; then
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "the $name registry exited at start; its log:" >&2
      cat "$dir/registry.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the $name registry did not answer on port $port within 60 s" >&2
  return 1
}

# Exports SENTINELA_TEST_REGISTRY (open) and SENTINELA_TEST_AUTH_REGISTRY (login
# SENTINELA_TEST_REGISTRY_USER / SENTINELA_TEST_REGISTRY_PASSWORD), both host:port, and
# SENTINELA_TEST_REGISTRY_DATA (the open one's storage, for tests that tamper with a blob).
start_registries() {
  ensure_registry
  REGISTRY_DIR="$(mktemp -d /tmp/sentinela-registry.XXXXXX)"
  local open_port auth_port
  open_port=$(free_port)
  start_one_registry open "$open_port"
  export SENTINELA_TEST_REGISTRY_USER="sentinela"
  export SENTINELA_TEST_REGISTRY_PASSWORD="test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  htpasswd -Bbc "$REGISTRY_DIR/htpasswd" "$SENTINELA_TEST_REGISTRY_USER" "$SENTINELA_TEST_REGISTRY_PASSWORD" 2>/dev/null
  auth_port=$(free_port)
  start_one_registry auth "$auth_port" "$REGISTRY_DIR/htpasswd"
  export SENTINELA_TEST_REGISTRY="127.0.0.1:${open_port}"
  export SENTINELA_TEST_AUTH_REGISTRY="127.0.0.1:${auth_port}"
  export SENTINELA_TEST_REGISTRY_DATA="$REGISTRY_DIR/open/data"
}

stop_registries() {
  if [[ -n "${REGISTRY_DIR:-}" && -d "$REGISTRY_DIR" ]]; then
    local pid
    for pid in "$REGISTRY_DIR"/*/pid; do
      [[ -f "$pid" ]] || continue
      kill "$(cat "$pid")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$REGISTRY_DIR"
  fi
}
