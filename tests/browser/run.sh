#!/usr/bin/env bash
# The member center (web/) in headless Chromium against real `points serve` processes.
# Installs what it needs when missing (Chromium and a CJK font from Debian, playwright-core
# from npm), builds the release binary, and runs tests/browser/member-center.test.mjs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    echo "Installing Chromium (and a CJK font for readable screenshots) from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
"$CHROMIUM" --version 2>/dev/null | head -n1 || true
node --version

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build --release --bin points
target_dir="${CARGO_TARGET_DIR:-target}"
export POINTS_BIN="$target_dir/release/points"

cd tests/browser
node --test member-center.test.mjs
