#!/bin/bash
# Configures (once) and builds kvmini into BUILDDIR (default: build), warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dwerror=true --buildtype=debugoptimized >/dev/null
fi
ninja -C "$BUILD"
