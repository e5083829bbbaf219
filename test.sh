#!/usr/bin/env bash
# Runs every test of the workspace: unit and integration tests with nextest, then doc tests
# (which nextest does not run). Dev profile: CI has 2 cores and DataFusion is slow to build.
set -euo pipefail
cd "$(dirname "$0")"
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
