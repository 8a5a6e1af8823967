#!/usr/bin/env bash
# Installs Fashion-MNIST for the lab (Debian package dataset-fashion-mnist, idx files under
# /usr/share/datasets/fashion-mnist) when it is missing and this user may run apt-get. Without it
# the lab reports the experiments that need it (E4, E9) as not run. Nothing is downloaded at run
# time: this is the set-up step.
set -uo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -e "$dir/train-images-idx3-ubyte.gz" ] || [ -e "$dir/train-images-idx3-ubyte" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing the Debian package dataset-fashion-mnist"
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
    || echo "setup: could not install dataset-fashion-mnist; the lab will not run E4 and E9"
else
  echo "setup: Fashion-MNIST not found in $dir (sudo apt-get install dataset-fashion-mnist," \
       "or gumbelkit lab --data-dir DIR); the lab will not run E4 and E9"
fi
exit 0
