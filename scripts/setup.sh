#!/usr/bin/env bash
# Fetches and verifies the third-party files lemctl's plugins need at run time into $1
# (default third_party/). Idempotent: a verified file is never fetched again, so a second run
# works offline. Filled in by the ONNX issue (M1.3).
set -euo pipefail
dest=${1:-third_party}
mkdir -p "$dest"
