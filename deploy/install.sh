#!/bin/sh
# Installs a tree laid out by `handcheck flash` as the handcheck system service. Run as root on the
# board, from anywhere; running it again after the next flash is safe.
#
#   sudo /opt/handcheck/deploy/install.sh
#
# - Node.js >= 20 must be installed (Raspberry Pi OS: NodeSource packages, or `apt install nodejs`
#   on Debian trixie).
# - node_modules were copied from the machine that flashed. When that machine's platform (OS, CPU,
#   Node ABI) differs from this one - a laptop flashing a Pi - the native modules (onoff/epoll,
#   i2c-bus, @serialport/bindings-cpp, better-sqlite3) do not load here, so they are installed again
#   with `npm ci --omit=dev`, which needs the network and python3, make and g++
#   (apt install build-essential python3).
# - DESTDIR=/some/root installs the unit and udev rules under that root and skips user creation and
#   systemctl/udevadm, for staging an image.
set -eu

dir=$(cd "$(dirname "$0")/.." && pwd)
destdir=${DESTDIR:-}
user=handcheck

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

node=$(command -v node) || fail "node is not on PATH; install Node.js 20 or later"
major=$("$node" -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || fail "Node.js $("$node" --version) is too old; handcheck needs 20 or later"

platform=$("$node" -p '`${process.platform}-${process.arch}-abi${process.versions.modules}`')
flashed=$(cat "$dir/node_modules/.handcheck-platform" 2>/dev/null || echo none)
if [ "$flashed" != "$platform" ]; then
  echo "install.sh: node_modules were built for $flashed, this is $platform: npm ci --omit=dev"
  (cd "$dir" && npm ci --omit=dev --no-audit --no-fund) || fail "npm ci failed; native modules need build-essential and python3"
  echo "$platform" > "$dir/node_modules/.handcheck-platform"
fi

if [ -z "$destdir" ]; then
  for group in gpio i2c dialout; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$dir" --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  usermod -a -G gpio,i2c,dialout "$user"
fi

unit="$destdir/etc/systemd/system/handcheck.service"
rules="$destdir/etc/udev/rules.d/99-handcheck.rules"
mkdir -p "$(dirname "$unit")" "$(dirname "$rules")"
sed -e "s|@DIR@|$dir|g" -e "s|@NODE@|$node|g" "$dir/deploy/handcheck.service" > "$unit"
cp "$dir/deploy/99-handcheck.rules" "$rules"
chmod 0644 "$unit" "$rules"
echo "install.sh: installed $unit and $rules"

if [ -z "$destdir" ]; then
  udevadm control --reload-rules && udevadm trigger || echo "install.sh: udevadm failed; the rules apply from the next boot" >&2
  systemctl daemon-reload
  systemctl enable handcheck.service
  echo "install.sh: enabled handcheck.service; start it with: sudo systemctl restart handcheck"
fi
