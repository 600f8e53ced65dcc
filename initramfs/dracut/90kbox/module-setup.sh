#!/bin/bash
# shellcheck disable=SC2154 # dracut sets initdir and dracutsysrootdir
# dracut module: puts kbox into the initramfs with the libraries its applets
# open on first use (`kbox --libs`) and a link per applet, as chosen in
# /etc/kbox/initramfs.conf (the same file the initramfs-tools hook reads). A
# file another module put under an applet's name is left alone unless
# KBOX_REPLACE names that applet.

# Where kbox is installed (`make install` writes its BINDIR here).
KBOX_BIN=/usr/bin/kbox
# Where kbox goes in the image: on the PATH of dracut's init.
KBOX_IMAGE_BIN=/usr/bin/kbox

# Included in every image once kbox is installed, like a package's hook.
check() {
    [[ -x $dracutsysrootdir$KBOX_BIN ]] || return 1
    return 0
}

depends() {
    return 0
}

install() {
    local conf=$dracutsysrootdir${KBOX_CONF:-/etc/kbox/initramfs.conf}
    local KBOX_APPLETS="" KBOX_REPLACE="" built a applets=() lib dir name d f replace skip
    if [[ -r $conf ]]; then
        # shellcheck source=/dev/null
        . "$conf" || { derror "kbox: cannot read $conf"; return 1; }
    fi
    built=$("$dracutsysrootdir$KBOX_BIN" --list) || { derror "kbox: $KBOX_BIN --list failed"; return 1; }
    for a in ${KBOX_APPLETS:-$built}; do
        if grep -qxF -- "$a" <<<"$built"; then
            applets+=("$a")
        else
            dwarn "kbox: $conf names '$a', which this kbox does not have; skipped"
        fi
    done

    inst_binary "$KBOX_BIN" "$KBOX_IMAGE_BIN" || return 1

    # Libraries opened on first use are invisible to ldd: `kbox --libs` names
    # them, and inst_library brings each one's own dependencies. A library
    # that is not installed costs only the applets needing it.
    local libs
    libs=$("$dracutsysrootdir$KBOX_BIN" --libs "${applets[@]}") ||
        dwarn "kbox: '$KBOX_BIN --libs' failed; some applets may not work in the initramfs"
    for lib in $libs; do
        [[ $lib == /* ]] || continue
        if [[ -e $dracutsysrootdir$lib ]]; then
            inst_library "$lib"
        else
            dwarn "kbox: $lib is missing; applets that need it will not work in the initramfs"
        fi
    done

    # dracut's init searches /usr/sbin and /usr/bin (and /sbin, /bin): a file
    # under any of these names would shadow, or be shadowed by, the link.
    while IFS=/ read -r dir name; do
        [[ " ${applets[*]} " == *" $name "* ]] || continue
        replace=0
        [[ " $KBOX_REPLACE " == *" $name "* || " $KBOX_REPLACE " == *" all "* ]] && replace=1
        skip=0
        for d in /sbin /usr/sbin /bin /usr/bin; do
            f=$initdir$d/$name
            [[ -e $f || -L $f ]] || continue
            # Ours: a link to the image's kbox (absolute links resolve inside the image).
            [[ $(readlink "$f") == "$KBOX_IMAGE_BIN" || $f -ef $initdir$KBOX_IMAGE_BIN ]] && continue
            if ((replace)); then
                rm -f -- "$f"
            else
                skip=1
            fi
        done
        if ((skip)); then
            dinfo "kbox: $name is already in the image and not kbox; left alone"
            continue
        fi
        mkdir -p "$initdir/usr/$dir"
        ln -sfn "$KBOX_IMAGE_BIN" "$initdir/usr/$dir/$name"
    done < <("$dracutsysrootdir$KBOX_BIN" --list-full)
}
