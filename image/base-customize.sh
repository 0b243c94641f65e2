#!/bin/sh
# image/base-customize.sh ROOTFS: owns the package configuration of the base root filesystem.
# Called by build-base.sh as mmdebstrap's customize hook (ROOTFS is the chroot, with /proc,
# /sys and /dev mounted by mmdebstrap). Sets up the boot partition files and the one
# initramfs, locks root and removes per-device identity. Environment: INITRD_MODULES.
set -eu
R=${1:?rootfs}
INITRD_MODULES=${INITRD_MODULES:?list or most}
log() { echo "base-customize: $*" >&2; }

# raspi-firmware writes cmdline.txt from these (pitfalls P2, P3 in shared/notes/sd-image.md):
# root by label (the image's partitions are made by assemble, not by the installer), consoles
# on HDMI and the serial header (ttyS1 = mini-UART on Pi 3/4/Zero 2 W; the last one is
# /dev/console), and no cma= (the package's default 64M can leave a Pi 4 unbootable).
sed -i -e 's|^#\?ROOTPART=.*|ROOTPART=LABEL=KEFU_ROOT|' \
       -e 's|^#\?CONSOLES=.*|CONSOLES="tty0 ttyS1,115200"|' \
       -e 's|^#\?CMA=.*|CMA=0|' "$R/etc/default/raspi-firmware"
for want in 'ROOTPART=LABEL=KEFU_ROOT' 'CONSOLES="tty0 ttyS1,115200"' 'CMA=0'; do
  grep -qx "$want" "$R/etc/default/raspi-firmware" || { log "raspi-firmware defaults changed format: no $want"; exit 1; }
done

# initramfs: FSTYPE so the root fsck hook is included (P9: in a chroot it cannot detect the
# root fs type), zstd for speed.
{
  echo "# kefud image (image/base-customize.sh)"
  echo "FSTYPE=ext4"
  echo "COMPRESS=zstd"
  echo "MODULES=$INITRD_MODULES"
} > "$R/etc/initramfs-tools/conf.d/kefu.conf"
if [ "$INITRD_MODULES" = list ]; then
  # Enough to find the root filesystem on QEMU virt (virtio) and on the Raspberry Pi SD slot:
  # bcm2835 (sdhost, Pi 3 / Zero 2 W), sdhci-iproc (Pi 4 emmc2) and gpio-regulator (the
  # Pi 4 SD I/O voltage switch emmc2 waits for). mmc_block, bcm2835-dma, the firmware GPIO
  # expander and clocks are built into Debian's kernel. Booted under QEMU only; release
  # images use INITRD_MODULES=most until a board check passes (image/README.md).
  cat >> "$R/etc/initramfs-tools/modules" <<'MODULES'
# kefud image: INITRD_MODULES=list (image/base-customize.sh)
ext4
virtio_pci
virtio_blk
sdhci-iproc
bcm2835
gpio-regulator
MODULES
fi
# The one initramfs; raspi-firmware's post-update hook then fills /boot/firmware.
env -u INITRD chroot "$R" update-initramfs -c -k all

kver=$(ls "$R/lib/modules" | sort -V | tail -n 1)
for f in "initrd.img-$kver" "vmlinuz-$kver" config.txt cmdline.txt; do
  [ -s "$R/boot/firmware/$f" ] || { log "raspi-firmware did not write /boot/firmware/$f"; exit 1; }
done
grep -q 'root=LABEL=KEFU_ROOT' "$R/boot/firmware/cmdline.txt" || { log "cmdline.txt lacks root=LABEL=KEFU_ROOT"; exit 1; }
log "kernel $kver, initrd $(du -h "$R/boot/firmware/initrd.img-$kver" | cut -f1), cmdline: $(cat "$R/boot/firmware/cmdline.txt")"

# No password anywhere: root is locked (SSH, when first boot enables it, is key-only).
chroot "$R" passwd -l root >/dev/null
# Per-device identity is made on the device: SSH host keys by first boot, machine-id by
# systemd (mmdebstrap leaves /etc/machine-id empty).
rm -f "$R"/etc/ssh/ssh_host_*
