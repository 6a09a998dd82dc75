#!/usr/bin/env bash
# The status page is tested in a real browser (web/browser_test.go drives
# headless Chromium with chromedp): Debian's chromium package provides it.
# Nothing is done when it is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
	chromium --version 2>/dev/null | head -1
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version 2>/dev/null | head -1
