#!/usr/bin/env bash
# Installs the Debian packages moec builds with, only those that are missing.
set -euo pipefail
packages=(cmake g++ pkg-config ninja-build libeigen3-dev libhdf5-dev hdf5-tools libfmt-dev
          catch2 nlohmann-json3-dev libcli11-dev libsentencepiece-dev libcpp-httplib-dev
          libpcre2-dev libicu-dev libssl-dev clang libclang-rt-dev
          zlib1g-dev python3 python3-numpy python3-h5py curl libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
