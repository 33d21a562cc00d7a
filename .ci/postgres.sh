#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server (issue 17): TIERBOT_TEST_POSTGRES is
# set to its URL for the command, and the server and its folder are gone when it ends.
#
#   .ci/postgres.sh make test
#   .ci/postgres.sh .venv/bin/pytest tests/test_postgres.py -q
#   .ci/postgres.sh bash          # a shell with the server, by hand
#
# Needs PostgreSQL's server binaries (initdb, pg_ctl): PG_BIN, else the newest
# /usr/lib/postgresql/*/bin (Debian's package), else those on PATH. It installs nothing
# (.ci/run does, in CI). initdb refuses to run as root: as root the server runs as the
# user `postgres` (created if missing). Nothing is kept: fsync is off, the data is in a
# temporary folder removed at exit.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]   (runs COMMAND with TIERBOT_TEST_POSTGRES set)" >&2
    exit 2
fi

bin="${PG_BIN:-}"
if [ -z "$bin" ]; then
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$bin" ] && command -v pg_ctl >/dev/null 2>&1; then
    bin="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
    echo "postgres.sh: no PostgreSQL server binaries (initdb, pg_ctl); install the postgresql package or set PG_BIN" >&2
    exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/tierbot-pg.XXXXXX")"
as=()
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    chown postgres: "$dir"
    as=(runuser -u postgres --)
fi
chmod 700 "$dir"

stop() {
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${as[@]}" "$bin/initdb" -D "$dir/data" -U tierbot --auth=trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
# No durability (a test server): fsync, full-page writes and commit waits off.
if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null; then
    cat "$dir/server.log" >&2
    exit 1
fi

export TIERBOT_TEST_POSTGRES="postgresql://tierbot@127.0.0.1:$port/postgres"
echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $TIERBOT_TEST_POSTGRES" >&2
status=0
"$@" || status=$?
exit "$status"
