#!/usr/bin/env bash
# Make sure the services the tests use answer on their standard local ports; start one that is
# installed but stopped. One that cannot be started is named, and its tests are skipped saying why
# (tests/needs.py); with ROSTER_TEST_STRICT=1 (CI) this script fails instead. Usage: tests/services.sh NAME...
set -u

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local port=$1 i
  for i in $(seq 1 60); do answers "$port" && return 0; sleep 1; done
  return 1
}

ensure() {
  local name=$1 port=$2 start=$3
  answers "$port" && return 0
  echo "services: $name is not answering on 127.0.0.1:$port; starting it" >&2
  if ! eval "$start" >/dev/null 2>&1 || ! wait_for "$port"; then
    echo "services: $name is needed by the tests on 127.0.0.1:$port and could not be started ($start)" >&2
    return 1
  fi
}

status=0
for service in "$@"; do
  case "$service" in
    postgresql)
      ensure PostgreSQL 5432 'command -v pg_ctlcluster && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n 1) main start' || status=1 ;;
    mariadb)
      ensure MariaDB 3306 'command -v start-stop-daemon && start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' || status=1 ;;
    rabbitmq)
      ensure RabbitMQ 5672 'command -v rabbitmq-server && rabbitmq-server -detached' || status=1 ;;
    *) echo "services: unknown service $service" >&2; exit 2 ;;
  esac
done
if [ $status -ne 0 ] && { [ -z "${ROSTER_TEST_STRICT:-}" ] || [ "${ROSTER_TEST_STRICT}" = 0 ]; }; then
  echo "services: the tests that need it will be skipped, and say so in pytest's summary" >&2
  exit 0
fi
exit $status
