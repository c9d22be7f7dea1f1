#!/usr/bin/env bash
# Throwaway test servers (PostgreSQL 15, a PgBouncer in transaction-pooling mode in
# front of it, and an OpenSSH sshd for SFTP) kept in one state directory, so a test run can start them, point the tests at them and
# throw everything away afterwards.
#
#   scripts/services.sh start DIR   install missing packages, start the servers
#                                   from scratch, write DIR/env.sh
#   scripts/services.sh stop DIR    stop the servers (idempotent, never fails)
#   scripts/services.sh env DIR     print DIR/env.sh
#   scripts/services.sh install     only install missing packages (scripts/demo)
#
# Works as root (CI: servers run as the postgres and lethe-sftp users) and as an
# ordinary user (servers run as that user; sudo is only needed to install packages).
set -euo pipefail

readonly APT_PACKAGES=(libpq-dev libssh2-1-dev libarchive-dev postgresql openssh-server
  libarchive-tools p7zip-full pkg-config prometheus pgbouncer postgresql-client-15 openssh-client)
readonly PG_PORT_BASE=55432
# Not PgBouncer's packaged 6432: on a machine with systemd, installing the package starts
# the system daemon there.
readonly PGBOUNCER_PORT_BASE=56432
readonly PGBOUNCER=/usr/sbin/pgbouncer
readonly SSH_PORT_BASE=52222
readonly ROOT_SFTP_USER=lethe-sftp
readonly SSHD=/usr/sbin/sshd # sshd refuses to start unless run by absolute path
readonly START_ATTEMPTS=20   # another run may grab a port between our check and bind

say() { printf '==> %s\n' "$*"; }
warn() { printf 'services.sh: %s\n' "$*" >&2; }
die() {
  warn "$*"
  exit 1
}
usage() {
  printf 'usage: %s start|stop|env DIR, or %s install\n' "${0##*/}" "${0##*/}" >&2
  exit 2
}
is_root() { [[ $(id -u) -eq 0 ]]; }

# initdb refuses to run as root, so as root the cluster belongs to the postgres OS
# user. runuser keeps the cwd, which postgres may not be allowed to read: use /tmp.
as_pg() {
  if is_root; then
    (cd /tmp && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Absolute, symlink-free path of an existing directory.
abs_dir() { (cd "$1" && pwd -P); }

# ---------------------------------------------------------------------------
# Packages

ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    warn "no dpkg-query (not Debian/Ubuntu): skipping the package check"
    return 0
  fi
  local pkg missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]} > 0)) || return 0

  local sudo=()
  if ! is_root; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "missing packages: ${missing[*]} (and no password-less sudo); install them with:" \
        "sudo apt-get install -y ${missing[*]}"
    fi
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  # env(1) because sudo resets the environment.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ---------------------------------------------------------------------------
# Users (root only)

# create_user NAME USERADD-ARGS...: tolerates a concurrent run creating it first.
create_user() {
  local name=$1
  shift
  id -u "$name" >/dev/null 2>&1 && return 0
  useradd "$@" "$name" || id -u "$name" >/dev/null 2>&1 || die "could not create user $name"
}

ensure_sftp_user() {
  create_user "$ROOT_SFTP_USER" --create-home --shell /bin/sh
  # useradd leaves the account locked ('!'); with UsePAM no, sshd then refuses even
  # key logins. '*' means "no password" without being locked.
  if [[ $(getent shadow "$ROOT_SFTP_USER" | cut -d: -f2) == '!'* ]]; then
    usermod -p '*' "$ROOT_SFTP_USER"
  fi
}

# ---------------------------------------------------------------------------
# Ports

port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htln "sport = :$port" 2>/dev/null) ]]; then
    return 0
  fi
  # Without ss (or for listeners it missed): anything answering on loopback is taken.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# free_port FROM: the first port >= FROM that nothing listens on.
free_port() {
  local port=$1
  while port_in_use "$port"; do
    port=$((port + 1))
    ((port < $1 + 1000)) || die "no free TCP port in $1..$port"
  done
  echo "$port"
}

wait_for_port() { # wait_for_port PORT SECONDS
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------
# PostgreSQL

# The bin directory holding initdb and pg_ctl: PostgreSQL 15 if present, else the
# newest /usr/lib/postgresql/*/bin, else whatever initdb is on PATH.
find_pg_bin() {
  local dir initdb
  if [[ -x /usr/lib/postgresql/15/bin/initdb && -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    echo /usr/lib/postgresql/15/bin
    return 0
  fi
  while IFS= read -r dir; do
    if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
      echo "$dir"
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  if initdb=$(command -v initdb) && [[ -x $(dirname "$initdb")/pg_ctl ]]; then
    dirname "$initdb"
    return 0
  fi
  return 1
}

start_postgres() {
  local dir=$1 bin isready data=$1/pg sock=$1/pg-socket log=$1/postgres.log
  bin=$(find_pg_bin) || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH"
  isready=$bin/pg_isready
  [[ -x $isready ]] || isready=$(command -v pg_isready) || die "no pg_isready found"

  # Unix socket paths are limited to 107 bytes.
  ((${#sock} + 20 < 108)) || die "$dir is too long a path for PostgreSQL's socket"

  if is_root; then
    create_user postgres --system --user-group --no-create-home --shell /usr/sbin/nologin
  fi
  mkdir -p "$data" "$sock"
  chmod 700 "$data"
  : >"$log"
  if is_root; then
    chown postgres: "$data" "$sock" "$log"
  fi
  as_pg test -w "$data" ||
    die "the postgres user cannot reach $data: make $dir and its parents world-searchable (chmod 755)"

  say "initdb $data ($bin)"
  as_pg "$bin/initdb" --no-sync -A trust -U postgres -E UTF8 --locale=C -D "$data" \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }

  local port=$PG_PORT_BASE attempt
  for ((attempt = 1; ; attempt++)); do
    port=$(free_port "$port")
    say "starting PostgreSQL on 127.0.0.1:$port"
    : >"$log"
    # Durability off: these clusters are thrown away, and it makes tests much faster.
    # track_commit_timestamp: the safety suite (Tests/SafetyTests) dates every deletion by its commit.
    # LETHE_PG_DURABLE=1 keeps PostgreSQL's defaults (fsync, synchronous commit) and the
    # peer benchmark's memory settings, for benchmarks comparable with ../shared/bench/peers.
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB"
    if [[ ${LETHE_PG_DURABLE:-0} == 1 ]]; then
      durability="-c shared_buffers=512MB -c max_wal_size=8GB"
    fi
    if as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 -o "$durability \
-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$sock \
-c max_connections=300 -c track_commit_timestamp=on" start >"$dir/pg_ctl.log" 2>&1; then
      break
    fi
    # Lost a race for the port with another process: try the next one.
    if ((attempt < START_ATTEMPTS)) &&
      grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets' "$log"; then
      say "port $port was taken meanwhile, trying the next one"
      port=$((port + 1))
      continue
    fi
    cat "$dir/pg_ctl.log" "$log" >&2
    die "PostgreSQL did not start (log above: $log)"
  done

  local deadline=$((SECONDS + 30))
  until "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
    if ((SECONDS >= deadline)); then
      cat "$log" >&2
      die "PostgreSQL on port $port not ready after 30 s (log above: $log)"
    fi
    sleep 0.2
  done

  PG_PORT=$port
  PG_BIN=$bin
}

# pid of the postmaster recorded in DATA/postmaster.pid, if it is still running.
postmaster_pid() {
  local pid
  [[ -f $1/postmaster.pid ]] || return 1
  pid=$(head -n1 "$1/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A stale pid may have been reused: only trust a postmaster of this data directory.
  [[ $(ps -o args= -p "$pid" 2>/dev/null) == *"postgres -D $1 "* ]] || return 1
  echo "$pid"
}

stop_postgres() {
  local data=$1/pg bin pid
  pid=$(postmaster_pid "$data") || return 0
  say "stopping PostgreSQL (pid $pid)"
  if bin=$(find_pg_bin); then
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  # pg_ctl missing or stuck: the server is ours and disposable, so kill it.
  if pid=$(postmaster_pid "$data"); then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------------------
# PgBouncer

pgbouncer_pid() {
  local pid
  [[ -f $1/pgbouncer.pid ]] || return 1
  pid=$(<"$1/pgbouncer.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A stale pid may have been reused: only trust a pgbouncer running our ini.
  [[ $(ps -o args= -p "$pid" 2>/dev/null) == *"pgbouncer"*"$1/pgbouncer.ini"* ]] || return 1
  echo "$pid"
}

# Transaction pooling in front of the test cluster (any database name, trust auth), as a
# large deployment runs it between many workers and PostgreSQL. The startup parameter
# `options` is deliberately not ignored: PgBouncer refuses it, and the tests check that
# Lethe copes.
start_pgbouncer() { # start_pgbouncer DIR PG_PORT
  local dir=$1 pg_port=$2 bd=$1/pgbouncer
  [[ -x $PGBOUNCER ]] || die "$PGBOUNCER not found (package pgbouncer)"
  mkdir -p "$bd"
  # trust still needs the user listed in auth_file.
  printf '"postgres" ""\n' >"$bd/userlist.txt"
  local port=$PGBOUNCER_PORT_BASE attempt log=$bd/pgbouncer.log
  for ((attempt = 1; ; attempt++)); do
    port=$(free_port "$port")
    cat >"$bd/pgbouncer.ini" <<EOF
; Throwaway PgBouncer for Lethe's tests (scripts/services.sh).
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $bd/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
logfile = $log
pidfile = $bd/pgbouncer.pid
admin_users = postgres
EOF
    : >"$log"
    if is_root; then
      chown -R postgres: "$bd"
    fi
    say "starting PgBouncer (transaction pooling) on 127.0.0.1:$port"
    if ! as_pg "$PGBOUNCER" -d -q "$bd/pgbouncer.ini" 2>"$bd/start.log"; then
      cat "$bd/start.log" "$log" >&2
      die "PgBouncer did not start (log above: $log)"
    fi
    if wait_for_port "$port" 10 && pgbouncer_pid "$bd" >/dev/null; then
      break
    fi
    if ((attempt < START_ATTEMPTS)) && grep -qE 'Address already in use|bind' "$log" "$bd/start.log"; then
      say "port $port was taken meanwhile, trying the next one"
      port=$((port + 1))
      continue
    fi
    cat "$bd/start.log" "$log" >&2
    die "PgBouncer on port $port did not come up (log above: $log)"
  done
  PGBOUNCER_PORT=$port
}

stop_pgbouncer() {
  local bd=$1/pgbouncer pid
  pid=$(pgbouncer_pid "$bd") || return 0
  say "stopping PgBouncer (pid $pid)"
  kill -INT "$pid" 2>/dev/null || true # SIGINT: shut down now, without waiting for clients
  local deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$bd/pgbouncer.pid"
}

# ---------------------------------------------------------------------------
# sshd

write_sshd_config() { # write_sshd_config SSHD_DIR PORT USER EXTRA-LINE...
  local sd=$1 port=$2 user=$3
  shift 3
  {
    cat <<EOF
# Throwaway sshd for Lethe's tests (scripts/services.sh).
Port $port
ListenAddress 127.0.0.1
HostKey $sd/ssh_host_ed25519_key
HostKey $sd/ssh_host_ecdsa_key
PidFile $sd/sshd.pid
AuthorizedKeysFile $sd/authorized_keys
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
# The state directory may live under world-writable /tmp.
StrictModes no
Subsystem sftp internal-sftp
AllowUsers $user
UseDNS no
PrintMotd no
LogLevel VERBOSE
# Tests open many connections at once; the default 10:30:100 drops some at random.
MaxStartups 200
MaxSessions 100
EOF
    local line
    for line in "$@"; do echo "$line"; done
  } >"$sd/sshd_config"
}

# Both host key types: libssh2 prefers ECDSA, OpenSSH's client ed25519.
write_known_hosts() { # write_known_hosts SSHD_DIR PORT
  local sd=$1 port=$2 type
  for type in ed25519 ecdsa; do
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$sd/ssh_host_${type}_key.pub")"
  done >"$sd/known_hosts"
}

sshd_pid() {
  local pid
  [[ -f $1/sshd.pid ]] || return 1
  pid=$(<"$1/sshd.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A stale pid may have been reused: only trust an sshd running our config.
  [[ $(ps -o args= -p "$pid" 2>/dev/null) == *"sshd -f $1/sshd_config "* ]] || return 1
  echo "$pid"
}

# sshd daemonizes before it binds, so exit status 0 proves nothing: a taken port
# only shows in its log. It writes its pid file once it listens.
# Prints up, taken or timeout.
await_sshd() { # await_sshd SSHD_DIR PORT LOG
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if sshd_pid "$1" >/dev/null && wait_for_port "$2" 1; then
      echo up
      return 0
    fi
    if grep -qE 'Cannot bind|Address already in use' "$3"; then
      echo taken
      return 0
    fi
    sleep 0.1
  done
  echo timeout
}

start_sshd() {
  local dir=$1 sd=$1/sshd upload=$1/sftp-root user
  [[ -x $SSHD ]] || die "$SSHD not found (package openssh-server)"
  if is_root; then
    ensure_sftp_user
    user=$ROOT_SFTP_USER
    mkdir -p /run/sshd # privilege separation directory, missing in containers
  else
    user=$(id -un)
  fi

  mkdir -p "$sd"
  chmod 755 "$sd" # the login user reads authorized_keys from here
  ssh-keygen -q -N '' -t ed25519 -C lethe-test-host -f "$sd/ssh_host_ed25519_key"
  ssh-keygen -q -N '' -t ecdsa -C lethe-test-host -f "$sd/ssh_host_ecdsa_key"
  ssh-keygen -q -N '' -t ed25519 -C lethe-test-client -f "$sd/client_ed25519"
  chmod 600 "$sd/client_ed25519"
  cp "$sd/client_ed25519.pub" "$sd/authorized_keys"
  chmod 644 "$sd/authorized_keys"

  mkdir -p "$upload"
  chmod 755 "$upload"
  if is_root; then
    chown "$user:" "$upload"
  fi

  # OpenSSH 9.8+ locks out a source address after failed logins; tests provoke those.
  local extra=()
  write_sshd_config "$sd" "$SSH_PORT_BASE" "$user"
  if "$SSHD" -t -f "$sd/sshd_config" -o PerSourcePenalties=no 2>/dev/null; then
    extra=("PerSourcePenalties no")
  fi

  local port=$SSH_PORT_BASE attempt log=$sd/sshd.log state
  for ((attempt = 1; ; attempt++)); do
    port=$(free_port "$port")
    write_sshd_config "$sd" "$port" "$user" "${extra[@]}"
    "$SSHD" -t -f "$sd/sshd_config" || die "sshd rejects $sd/sshd_config"
    say "starting sshd on 127.0.0.1:$port (sftp user $user)"
    : >"$log"
    if ! "$SSHD" -f "$sd/sshd_config" -E "$log"; then
      cat "$log" >&2
      die "sshd did not start (log above: $log)"
    fi
    state=$(await_sshd "$sd" "$port" "$log")
    if [[ $state == up ]]; then
      break
    fi
    # Lost a race for the port with another process: try the next one.
    if [[ $state == taken ]] && ((attempt < START_ATTEMPTS)); then
      say "port $port was taken meanwhile, trying the next one"
      port=$((port + 1))
      continue
    fi
    cat "$log" >&2
    die "sshd on port $port did not come up (log above: $log)"
  done

  write_known_hosts "$sd" "$port"
  printf 'ls %s\n' "$upload" >"$sd/check.batch"
  if ! sftp -F /dev/null -b "$sd/check.batch" -i "$sd/client_ed25519" \
    -o IdentitiesOnly=yes -o UserKnownHostsFile="$sd/known_hosts" \
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=10 -P "$port" "$user@127.0.0.1" >"$sd/check.log" 2>&1; then
    cat "$sd/check.log" "$log" >&2
    die "sftp login to $user@127.0.0.1:$port failed (sftp output and sshd log above)"
  fi

  SSH_PORT=$port
  SSH_USER=$user
}

stop_sshd() {
  local sd=$1/sshd pid child
  pid=$(sshd_pid "$sd") || return 0
  say "stopping sshd (pid $pid)"
  # Per-connection children outlive the listener: end ours first.
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null || true); do
    kill -TERM "$child" 2>/dev/null || true
  done
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$sd/sshd.pid"
}

# ---------------------------------------------------------------------------
# env.sh

write_env() {
  local dir=$1 sd=$1/sshd
  export_line() { printf 'export %s=%q\n' "$1" "$2"; }
  {
    echo "# Written by scripts/services.sh start: the throwaway test servers."
    export_line LETHE_TEST_DATABASE_URL "postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
    export_line LETHE_TEST_PG_PORT "$PG_PORT"
    export_line LETHE_TEST_PG_SOCKET_DIR "$dir/pg-socket"
    export_line LETHE_TEST_PG_DATA "$dir/pg"
    export_line LETHE_TEST_PG_BIN "$PG_BIN"
    export_line LETHE_TEST_PGBOUNCER_URL "postgresql://postgres@127.0.0.1:$PGBOUNCER_PORT/postgres"
    export_line LETHE_TEST_SSH_HOST 127.0.0.1
    export_line LETHE_TEST_SSH_PORT "$SSH_PORT"
    export_line LETHE_TEST_SSH_USER "$SSH_USER"
    export_line LETHE_TEST_SSH_KEY "$sd/client_ed25519"
    export_line LETHE_TEST_SSH_PUBLIC_KEY "$sd/client_ed25519.pub"
    export_line LETHE_TEST_SSH_KNOWN_HOSTS "$sd/known_hosts"
    export_line LETHE_TEST_SSH_ROOT "$dir/sftp-root"
    export_line LETHE_TEST_SSHD_CONFIG "$sd/sshd_config"
    export_line LETHE_TEST_SSHD_PIDFILE "$sd/sshd.pid"
    export_line LETHE_TEST_SERVICES_DIR "$dir"
  } >"$dir/env.sh.tmp"
  mv "$dir/env.sh.tmp" "$dir/env.sh"
}

# ---------------------------------------------------------------------------
# Commands

cmd_start() {
  local dir=$1 created=0
  [[ -d $dir ]] || created=1
  mkdir -p "$dir"
  dir=$(abs_dir "$dir")
  # The path goes unquoted into pg_ctl -o and sshd_config: keep it plain.
  [[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "state directory path must be plain (letters, digits, ._+-/): $dir"
  if ((created)); then
    chmod 755 "$dir" # the servers' users must traverse it
  fi

  ensure_packages

  # Always start from scratch; leave nothing running if a step below fails.
  cmd_stop "$dir"
  rm -rf "${dir:?}/pg" "$dir/pg-socket" "$dir/pgbouncer" "$dir/sshd" "$dir/sftp-root" "$dir/env.sh" \
    "$dir/postgres.log" "$dir/initdb.log" "$dir/pg_ctl.log"
  # shellcheck disable=SC2064 # expand $dir now
  trap "cmd_stop $(printf %q "$dir")" EXIT

  start_postgres "$dir"
  start_pgbouncer "$dir" "$PG_PORT"
  start_sshd "$dir"
  write_env "$dir"

  trap - EXIT
  say "services ready; source $dir/env.sh (or: scripts/services.sh env $dir)"
}

cmd_stop() {
  local dir=$1
  [[ -d $dir ]] || return 0
  dir=$(abs_dir "$dir") || return 0
  stop_sshd "$dir" || true
  stop_pgbouncer "$dir" || true
  stop_postgres "$dir" || true
}

cmd_env() {
  [[ -f $1/env.sh ]] || die "no $1/env.sh: run 'scripts/services.sh start $1' first"
  cat "$1/env.sh"
}

main() {
  if [[ ${1:-} == install && $# == 1 ]]; then
    ensure_packages
    return 0
  fi
  (($# == 2)) || usage
  case $1 in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  env) cmd_env "$2" ;;
  *) usage ;;
  esac
}

main "$@"
