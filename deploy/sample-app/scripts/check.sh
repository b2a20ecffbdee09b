#!/bin/sh
# ValidateService: the service answers its health check within 5 seconds.
for _ in $(seq 1 25); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$APP_PORT/health', timeout=1)" 2>/dev/null; then
    echo "healthy on port $APP_PORT"
    exit 0
  fi
  sleep 0.2
done
echo "no answer on port $APP_PORT" >&2
exit 1
