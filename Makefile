# kbox — GNU make only.
#   make                      build ./kbox with every applet
#   make APPLETS="a b"        build with only those applets (and only their libraries' notes)
#   make check                install missing deps, build (and the package), run every test suite
#   make install PREFIX=/usr/local DESTDIR=...
#   make deb                  build the Debian package into build/deb/
#   make check-images         only the package and initramfs image suites (part of make check)
#   make deps | bench | asan | fuzz | demo | clean
#   make fresh-check          make demo + make check on a fresh bookworm root (slow)
#   make check-property SEEDS=500   fsck.exfat's repairs over many seeded bit flips

VERSION   := 0.1.0
CC        := gcc
CFLAGS    ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror
# The libraries are opened on first use (libcommon/base/libraries.c), never
# linked: only their headers are needed, to compile.
PKGS      := mount blkid libgpiod libzstd fdisk
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=gnu11 $(WARNINGS) $(CPPFLAGS) $(CFLAGS) -D_GNU_SOURCE -DKBOX_VERSION='"$(VERSION)"' \
             -Ilibcommon $(PKG_CFLAGS)
ALL_LDFLAGS = -Wl,--as-needed $(LDFLAGS)
LDLIBS    :=

# An applet is applets/NAME.c or a folder applets/NAME/.
ALL_APPLETS := $(sort $(basename $(notdir $(filter-out applets/main.c,$(wildcard applets/*.c)))) \
                      $(patsubst applets/%/,%,$(wildcard applets/*/)))
APPLETS   ?= $(ALL_APPLETS)
UNKNOWN   := $(filter-out $(ALL_APPLETS),$(APPLETS))
ifneq ($(UNKNOWN),)
$(error unknown applet(s): $(UNKNOWN); known: $(ALL_APPLETS))
endif
APPLET_SRCS := $(foreach a,$(APPLETS),$(wildcard applets/$(a).c applets/$(a)/*.c))
LIB_SRCS  := $(wildcard libcommon/*/*.c)
HEADERS   := $(wildcard libcommon/*/*.h applets/*.h applets/*/*.h)

BUILD     ?= build
OUT       ?= kbox
OBJS      := $(patsubst %.c,$(BUILD)/%.o,applets/main.c $(APPLET_SRCS))
LIB_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB       := $(BUILD)/libcommon.a
# Relink when the applet set changes (objects alone would look up to date).
STAMP     := $(BUILD)/applets.$(shell echo '$(APPLETS)' | cksum | cut -d' ' -f1)

PREFIX    ?= /usr/local
BINDIR     = $(PREFIX)/bin
MANDIR     = $(PREFIX)/share/man
COMPDIR    = $(PREFIX)/share/bash-completion/completions
# The initramfs builders read only these places, whatever PREFIX is; set one
# empty to leave that part out.
SYSCONFDIR      ?= /etc
INITRAMFS_HOOKS ?= /usr/share/initramfs-tools/hooks
DRACUT_MODULES  ?= /usr/lib/dracut/modules.d
# Applets installed without a link, completion or man page under their own
# name, for names another package owns (the Debian package: exfatprogs's
# mkfs.exfat and fsck.exfat). They stay `kbox APPLET`; their man page is
# installed as kbox-APPLET.
NO_LINKS  ?=

.PHONY: all check check-property test deps install uninstall bench asan fuzz demo clean test-progs fresh-check \
        deb check-images
all: $(OUT) test-progs

$(OUT): $(OBJS) $(LIB) $(STAMP)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LIB) $(LDLIBS)

$(STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/applets.* && touch $@

$(BUILD)/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

# Helper programs for the tests: tests/progs/NAME.c -> build/tests/NAME (with
# libcommon), tests/progs/static/NAME.c -> build/tests/NAME linked statically.
TEST_PROGS := $(patsubst tests/progs/%.c,$(BUILD)/tests/%,$(wildcard tests/progs/*.c)) \
              $(patsubst tests/progs/static/%.c,$(BUILD)/tests/%,$(wildcard tests/progs/static/*.c))
test-progs: $(TEST_PROGS)

$(BUILD)/tests/%: tests/progs/%.c $(LIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/progs/static/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -static -o $@ $<

# ---- dependencies: Debian bookworm packages -------------------------------
DEPS_BUILD := gcc make pkg-config libmount-dev libblkid-dev libgpiod-dev libzstd-dev libfdisk-dev
DEPS_TEST  := bats bats-support bats-assert bats-file jq zstd exfatprogs exfat-fuse fuse3 gdb attr \
              cgroup-tools e2fsprogs xz-utils gpiod util-linux mount procps python3 binutils
DEPS_VM    := qemu-system-x86 busybox-static kmod make gcc binutils xz-utils
DEPS_FUZZ  := clang libclang-rt-14-dev zlib1g-dev
DEPS_BENCH := hyperfine bc time
# make deb, make check-images: the package build, lintian, the image roots.
DEPS_IMAGES := build-essential debhelper dpkg-dev git jq lintian mmdebstrap qemu-system-x86 tar
DEPS       := $(DEPS_BUILD) $(DEPS_TEST) $(DEPS_VM) $(DEPS_FUZZ) $(DEPS_BENCH) $(DEPS_IMAGES)

deps:
	@installed=$$(dpkg-query -W -f='$${Package} $${db:Status-Status}\n' $(DEPS) 2>/dev/null | \
	    awk '$$2=="installed"{print $$1}'); \
	missing=$$(for p in $(DEPS); do echo "$$installed" | grep -qx "$$p" || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# ---- tests ----------------------------------------------------------------
# The -dev packages that `deps` installs are read by pkg-config when make parses
# this file, so what builds after `deps` runs in a new make.
# The image suites (tests/images/) test the package that `deb` builds.
check: deps
	$(MAKE) all
	$(MAKE) asan
	$(MAKE) deb
	tests/run

test: all deb
	tests/run

# The property test of fsck.exfat's repairs (root, loop devices, exfat-fuse):
# SEEDS seeds of random metadata bit flips on a populated volume.
SEEDS ?= 500
check-property: deps
	$(MAKE) all
	$(MAKE) asan
	tests/fsck.exfat-property.sh -n $(SEEDS)

# The package, the initramfs-tools hook and the dracut module in Debian roots
# (cached in /var/cache/kbox/images), images booted under qemu; make check
# runs them too.
check-images: deps
	$(MAKE) all
	$(MAKE) deb
	tests/run tests/images/*.bats

# Sanitizer build of the same sources, used by tests that feed untrusted input.
asan:
	$(MAKE) BUILD=build/asan OUT=kbox-asan CC=clang LDFLAGS="-fsanitize=address,undefined" \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" kbox-asan

fuzz:
	@if [ -f fuzz/Makefile ]; then $(MAKE) -C fuzz run; else echo "fuzz: no fuzz targets yet"; fi

bench: all
	@set -e; for b in bench/*.sh; do [ -e "$$b" ] || continue; echo "== $$b"; bash "$$b"; done

demo: deps
	$(MAKE) all
	@tests/demo

# The README's two commands on a fresh Debian bookworm root (slow; see the script).
fresh-check:
	tests/fresh-check

# ---- install --------------------------------------------------------------
install: $(OUT)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(COMPDIR)
	install -m 0755 $(OUT) $(DESTDIR)$(BINDIR)/kbox
	@set -e; ./$(OUT) --list-full | while read -r path; do \
	    dir=$${path%/*}; name=$${path##*/}; \
	    case " $(NO_LINKS) " in *" $$name "*) \
	        for m in man/$$name.1 man/$$name.8; do [ -f $$m ] || continue; s=$${m##*.}; \
	            sed '/^\.SH NAME/{n;s/^/kbox\\-/;}' $$m >$(DESTDIR)$(MANDIR)/man$$s/kbox-$$name.$$s; \
	            chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/kbox-$$name.$$s; done; \
	        continue ;; esac; \
	    rel=$$( [ "$$dir" = bin ] && echo kbox || echo ../bin/kbox ); \
	    install -d "$(DESTDIR)$(PREFIX)/$$dir"; \
	    ln -sf "$$rel" "$(DESTDIR)$(PREFIX)/$$path"; \
	    if [ -f completions/$$name ]; then install -m 0644 completions/$$name $(DESTDIR)$(COMPDIR)/$$name; \
	    else ln -sf kbox $(DESTDIR)$(COMPDIR)/$$name; fi; \
	    for m in man/$$name.1 man/$$name.8; do [ -f $$m ] || continue; \
	        s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done; \
	done
	install -m 0644 man/kbox.1 $(DESTDIR)$(MANDIR)/man1/kbox.1
	install -m 0644 completions/kbox $(DESTDIR)$(COMPDIR)/kbox
ifneq ($(INITRAMFS_HOOKS),)
	install -d $(DESTDIR)$(INITRAMFS_HOOKS)
	sed 's|^KBOX_BIN=.*|KBOX_BIN=$(BINDIR)/kbox|' initramfs/hooks/kbox >$(DESTDIR)$(INITRAMFS_HOOKS)/kbox
	chmod 0755 $(DESTDIR)$(INITRAMFS_HOOKS)/kbox
endif
ifneq ($(DRACUT_MODULES),)
	install -d $(DESTDIR)$(DRACUT_MODULES)/90kbox
	sed 's|^KBOX_BIN=.*|KBOX_BIN=$(BINDIR)/kbox|' initramfs/dracut/90kbox/module-setup.sh \
	    >$(DESTDIR)$(DRACUT_MODULES)/90kbox/module-setup.sh
	chmod 0755 $(DESTDIR)$(DRACUT_MODULES)/90kbox/module-setup.sh
endif
ifneq ($(SYSCONFDIR),)
	@# A configuration edited since is kept.
	install -d $(DESTDIR)$(SYSCONFDIR)/kbox
	[ -e $(DESTDIR)$(SYSCONFDIR)/kbox/initramfs.conf ] || \
	    install -m 0644 initramfs/initramfs.conf $(DESTDIR)$(SYSCONFDIR)/kbox/initramfs.conf
endif

uninstall:
	@set -e; ./$(OUT) --list-full | while read -r path; do name=$${path##*/}; \
	    [ -L "$(DESTDIR)$(PREFIX)/$$path" ] && rm -f "$(DESTDIR)$(PREFIX)/$$path"; \
	    rm -f "$(DESTDIR)$(COMPDIR)/$$name" "$(DESTDIR)$(MANDIR)"/man?/"$$name".[18] \
	        "$(DESTDIR)$(MANDIR)"/man?/kbox-"$$name".[18]; done
	rm -f $(DESTDIR)$(BINDIR)/kbox $(DESTDIR)$(MANDIR)/man1/kbox.1 $(DESTDIR)$(COMPDIR)/kbox
ifneq ($(INITRAMFS_HOOKS),)
	rm -f $(DESTDIR)$(INITRAMFS_HOOKS)/kbox
endif
ifneq ($(DRACUT_MODULES),)
	rm -rf $(DESTDIR)$(DRACUT_MODULES)/90kbox
endif
ifneq ($(SYSCONFDIR),)
	@# The configuration goes only while it is as installed.
	if cmp -s initramfs/initramfs.conf $(DESTDIR)$(SYSCONFDIR)/kbox/initramfs.conf; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/kbox/initramfs.conf; \
	    rmdir $(DESTDIR)$(SYSCONFDIR)/kbox 2>/dev/null || true; fi
endif

# ---- Debian package -------------------------------------------------------
# Built from a copy of the tree (what git tracks or would track), since
# dpkg-buildpackage writes its results next to the source folder.
DEB_DIR  := $(BUILD)/deb
DEB_ARCH  = $(shell dpkg --print-architecture)
deb:
	@head -n 1 debian/changelog | grep -qF "($(VERSION))" || \
	    { echo "deb: debian/changelog is not at version $(VERSION)" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/kbox-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | \
	    xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	    tar -c --null -T - | tar -x -C $(DEB_DIR)/kbox-$(VERSION)
	cd $(DEB_DIR)/kbox-$(VERSION) && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
	    { tail -n 30 ../build.log >&2; echo "deb: dpkg-buildpackage failed: see $(DEB_DIR)/build.log" >&2; exit 1; }
	@echo "deb: $(DEB_DIR)/kbox_$(VERSION)_$(DEB_ARCH).deb"

clean:
	rm -rf build kbox kbox-asan
	@if [ -f fuzz/Makefile ]; then $(MAKE) -C fuzz clean; fi
