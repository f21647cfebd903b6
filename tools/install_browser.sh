#!/usr/bin/env bash
# Debian's headless Chromium and its WebDriver, for the report's browser test (tests/eval/test_report.py).
# `make test` runs this: a no-op where both are installed; where they are missing it installs them with apt-get
# (as root); elsewhere it says so and the browser test skips (under CI it fails instead).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium and chromedriver are missing and need root and apt-get to install" \
       "(apt-get install chromium chromium-driver); the browser test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium and chromium-driver for the report's browser test" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
