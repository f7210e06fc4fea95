#!/bin/sh
# Runs inside the kernel lane's VM, as root, chrooted into the host's root (read-only over 9p):
# loads the drivers under test with the host's modprobe, then runs the phase the host asked for.
# Lines starting with "handcheck-lane:" are for the host (test/kernel/lane.ts).
#   guest.sh PROJECT_DIR STATE_DIR
set -u
project=$1
state=$2
export HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HANDCHECK_KERNEL_LANE=1 HANDCHECK_REQUIRE_ROOT=1
# CI and TERM=dumb: vitest prints its results once instead of redrawing them on the serial console.
export HANDCHECK_LANE_STATE=$state CI=true TERM=dumb NO_COLOR=1
cd "$project" || exit 90

fail() {
  echo "handcheck-lane: setup-failed $*"
  exit 91
}

# i2c-stub answers at the addresses of the rpi4 board entry: a TMP102 at 0x48, a BME280 at 0x76 and
# an INA219 at 0x40. tmp102 is loaded for the test that binds it: the kernel cannot modprobe by itself
# here (its usermode helper would look in the initramfs).
modprobe i2c-dev || fail "module i2c-dev"
modprobe i2c-stub chip_addr=0x48,0x76,0x40 || fail "module i2c-stub"
modprobe tmp102 || fail "module tmp102"
modprobe i6300esb || fail "module i6300esb (and QEMU's -device i6300esb)"
modprobe softdog || fail "module softdog"
modprobe virtio_net || fail "module virtio_net"
modprobe configfs || fail "module configfs"
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config || fail "configfs mount"
# gpio-sim, built out of tree by the host (test/kernel/gpio-sim.ts).
insmod "$state/gpio-sim.ko" || fail "insmod gpio-sim.ko (built by the host from linux-source)"
ip link set lo up
ip link set eth0 up 2>/dev/null && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2

phase=$(cat "$state/phase")
echo "handcheck-lane: phase $phase"
vitest() {
  node node_modules/vitest/vitest.mjs run --configLoader runner --config test/kernel/vitest.config.ts "$@"
}
case "$phase" in
  suite)
    vitest test/kernel/suite/
    echo "handcheck-lane: suite-exit $?"
    # Figures for the lane's summary, not a test (test/kernel/i2c-cost.ts).
    node --import tsx test/kernel/i2c-cost.ts
    echo "handcheck-lane: measure-exit $?"
    # The last act of the first boot: the firmware, stopped with SIGSTOP with i6300esb armed. The host
    # expects the VM to be reset by i6300esb, and the second boot to run the after-reset phase.
    echo starved > "$state/phase"
    sync
    echo "handcheck-lane: starving"
    node --import tsx test/kernel/starve.ts
    echo "handcheck-lane: setup-failed the starved firmware exited ($?) instead of being reset by the watchdog"
    ;;
  only)
    # shellcheck disable=SC2046 # the filters are words on purpose
    vitest $(cat "$state/filters")
    echo "handcheck-lane: suite-exit $?"
    ;;
  starved)
    echo done > "$state/phase"
    vitest test/kernel/after-reset/
    echo "handcheck-lane: after-reset-exit $?"
    ;;
  *)
    fail "unknown phase $phase"
    ;;
esac
