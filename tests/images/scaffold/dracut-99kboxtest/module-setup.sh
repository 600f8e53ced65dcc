#!/bin/bash
# Image test scaffolding for dracut (--add kboxtest): inside.sh as a pre-mount
# hook, the kernel modules it loads and the tools it uses besides kbox.
# shellcheck disable=SC2154 # dracut sets moddir

check() {
    return 255
}

depends() {
    return 0
}

installkernel() {
    instmods exfat configfs gpio-sim virtio_blk virtio_pci
}

install() {
    inst_multiple sha256sum readlink mkdir mount umount sync sleep cat modprobe
    inst_simple /etc/kbox-test/inside.sh /kbox-test/inside.sh
    inst_hook pre-mount 99 "$moddir/kbox-test.sh"
}
