# Flavour "debian" (the default): Debian bookworm's own kernel and Raspberry Pi boot firmware.
# Sourced by image/build-base.sh; sets the package sources and the board-specific packages.
#
# Boards: Raspberry Pi 3 (B, B+, A+), Pi 4 / Pi 400 / CM4, Zero 2 W (device trees shipped by
# linux-image-arm64). Not Pi 5: bookworm's kernel has no bcm2712 support. Zero 2 W Wi-Fi
# needs the brcmfmac43436 firmware, which bookworm's firmware-brcm80211 does not carry.
# raspi-firmware's kernel hook copies the kernel, initrd and device trees to /boot/firmware
# and writes config.txt and cmdline.txt there (see ROOTPART/CONSOLES/CMA in build-base.sh).

FLAVOUR_SUITE=bookworm
FLAVOUR_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FLAVOUR_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
FLAVOUR_SOURCES="deb $FLAVOUR_MIRROR bookworm main non-free-firmware
deb $FLAVOUR_MIRROR bookworm-updates main non-free-firmware
deb $FLAVOUR_SECURITY_MIRROR bookworm-security main non-free-firmware"
FLAVOUR_BOOT_PACKAGES="linux-image-arm64 raspi-firmware firmware-brcm80211"
