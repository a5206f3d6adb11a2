#!/usr/bin/env bash
# Runs every fuzz target (or the TARGETs named) for SECONDS each (default 60): builds them with
# cargo-fuzz on the nightly toolchain (installing cargo-fuzz when it is missing), seeds each
# corpus from the examples, the shipped policies and fuzz/seeds/, and stops at the first target
# that finds a crash, a hang (an input over 30 s) or an input over 2 GiB of memory. A finding is
# left in fuzz/artifacts/TARGET/; `cargo +nightly fuzz run TARGET FILE` replays it.
#
#   fuzz/run.sh [--smoke] [--target-dir DIR] [SECONDS [TARGET...]]
#
# --smoke builds without optimisation and without the address sanitizer (minutes to build
# instead of tens of minutes; panics, hangs and memory bounds are still caught), for a short
# run in CI; --target-dir keeps the build somewhere that outlives the checkout.
set -euo pipefail
cd "$(dirname "$0")"
# What the targets write (run workspaces, policy files) goes here and is removed after.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export NOFX_FUZZ_DATA="$scratch"

usage="usage: fuzz/run.sh [--smoke] [--target-dir DIR] [SECONDS [TARGET...]]"
build=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --smoke) build+=(--dev --sanitizer none); shift ;;
    --target-dir)
      [ "$#" -ge 2 ] || { echo "$usage" >&2; exit 2; }
      build+=(--target-dir "$2"); shift 2 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
seconds="${1:-60}"
case "$seconds" in '' | *[!0-9]*) echo "$usage" >&2; exit 2 ;; esac

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets="plan config references documents http"
shift || true
[ "$#" -gt 0 ] && targets="$*"
# Each corpus starts from the examples, the shipped policies and fuzz/seeds/.
seed() {
  case "$1" in
    plan) for f in ../examples/plans/* seeds/plan/*; do cp "$f" "corpus/plan/"; done ;;
    config) for f in ../examples/agents/agents/*.toml ../policies/*.toml; do cp "$f" corpus/config/; done ;;
    references) for f in seeds/references/*; do cp "$f" corpus/references/; done ;;
    documents)
      for f in ../examples/questionnaires/* ../examples/prps/*.yaml; do cp "$f" corpus/documents/; done ;;
    http)
      # An input is a byte choosing the request, then what it carries.
      for f in ../examples/plans/*.yaml; do
        { printf '\001'; cat "$f"; } > "corpus/http/runs-$(basename "$f")"
      done
      for f in ../examples/prps/*.yaml; do
        { printf '\006'; cat "$f"; } > "corpus/http/prps-$(basename "$f")"
      done
      printf '\007{"at": "a", "patch": {"tasks": {"a": {"inputs": {"x": 2}}}}, "inputs": {}}' > corpus/http/fork
      printf '\01312' > corpus/http/after
      printf '\01412' > corpus/http/last-event-id ;;
    *) echo "fuzz/run.sh: no target $1 (plan, config, references, documents, http)" >&2; exit 2 ;;
  esac
}
for t in $targets; do
  mkdir -p "corpus/$t"
  seed "$t"
done

for target in $targets; do
  dict="dict/$target.dict"
  [ -f "$dict" ] || dict="dict/plan.dict"
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "${build[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=16384 \
    -dict="$dict" -print_final_stats=1
done
