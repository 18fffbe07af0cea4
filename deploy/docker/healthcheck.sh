#!/bin/bash
# The images' HEALTHCHECK: GET /healthz (or PATH) on 127.0.0.1:PORT; healthy
# on HTTP 200. Uses bash's /dev/tcp, so the runtime image needs no HTTP
# client. Usage: meridian-healthcheck PORT [PATH]
set -euo pipefail
port=${1:?usage: meridian-healthcheck PORT [PATH]}
path=${2:-/healthz}
if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
  echo "unhealthy: nothing listens on 127.0.0.1:$port" >&2
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
status=""
IFS= read -r -t 5 status <&3 || true
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
esac
echo "unhealthy: ${status:-no answer} from 127.0.0.1:$port$path" >&2
exit 1
