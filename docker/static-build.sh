#!/usr/bin/env bash
# docker/static-build.sh OUTDIR -- builds bascule as a static, stripped x86_64 Linux binary and
# lays out the image's files under OUTDIR: OUTDIR/bascule and OUTDIR/etc/bascule/bascule.toml.
# Used by docker/Dockerfile (in the Rust builder image) and by docker/build.sh (on the host),
# so both images hold the same build.
set -euo pipefail
out="${1:?usage: static-build.sh OUTDIR}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# glibc >= 2.34 links statically; DNS goes through bascule's own resolver, which reads
# /etc/resolv.conf without NSS, so nothing needs the dynamic loader.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=true \
  cargo build --release --locked --target x86_64-unknown-linux-gnu --bin bascule
mkdir -p "$out/etc/bascule"
cp target/x86_64-unknown-linux-gnu/release/bascule "$out/bascule"
cp docker/bascule.toml "$out/etc/bascule/bascule.toml"
chmod 0755 "$out/bascule"; chmod 0644 "$out/etc/bascule/bascule.toml"
