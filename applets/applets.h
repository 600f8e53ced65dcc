/* The applet table: one APPLET(id) line per applet, sorted by name.
 * id is the applet name with '.' and '-' as '_'; the applet's file defines
 * `const struct applet applet_<id>`. main.c includes this file twice. */
APPLET(cgexec_clone3)
APPLET(dump_exfat)
APPLET(exfat2img)
APPLET(exfatlabel)
APPLET(fsck_exfat)
APPLET(gpio_watch)
APPLET(mkfs_exfat)
APPLET(splitlock_stat)
APPLET(tune_exfat)
APPLET(uffd_snapshot)
