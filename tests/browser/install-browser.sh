#!/usr/bin/env bash
# Install the real browser the dashboard's tests drive (Debian's chromium and its chromedriver) when it is
# missing. Needs root (apt-get); as anyone else it only says what is missing, and the tests then skip
# (or fail, under CI=true).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: chromium/chromium-driver missing and cannot apt-get here (not root or not Debian)" >&2
  exit 0
fi
echo "install-browser: installing chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
