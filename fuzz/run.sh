#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): builds them with cargo-fuzz on the
# nightly toolchain (installing cargo-fuzz when it is missing), seeds each corpus from the
# examples, the shipped policies and fuzz/seeds/, and stops at the first target that finds a crash, a hang
# (an input over 30 s) or an input over 2 GiB of memory. A finding is left in
# fuzz/artifacts/TARGET/; `cargo +nightly fuzz run TARGET FILE` replays it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
case "$seconds" in '' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;; esac

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

mkdir -p corpus/plan corpus/config
for f in ../examples/plans/* seeds/plan/*; do cp "$f" "corpus/plan/$(basename "$f")"; done
for f in ../examples/agents/agents/*.toml ../policies/limits.toml ../policies/checkpoints.toml; do
  cp "$f" "corpus/config/$(basename "$f")"
done

# What the targets write (run workspaces, policy files) goes here and is removed after.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export NOFX_FUZZ_DATA="$scratch"

for target in plan config; do
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=16384 \
    -dict="dict/$target.dict" -print_final_stats=1
done
