#!/usr/bin/env bash
# Mutation testing of the Rust logic with cargo-mutants: every mutant (an
# operator flipped, a return value replaced, a function body emptied) of
# crates/core and crates/runtime must make some test fail. Survivors are
# listed in mutants.out/missed.txt; docs/ARCHITECTURE.md ("Mutation testing")
# says which of them are equivalent or harmless, and why.
#
#   scripts/mutants.sh                 # core and runtime (hours on two cores)
#   scripts/mutants.sh -p capstan-core # one crate
#
# The SQL of both backends is mutated by scripts/mutations.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked
if [ "$#" -eq 0 ]; then
    set -- -p capstan-core -p capstan-runtime
fi
exec cargo mutants --jobs 1 "$@"
