/* The applet table: one APPLET(id) line per applet, sorted by name.
 * id is the applet name with '.' and '-' as '_'; the applet's file defines
 * `const struct applet applet_<id>`. main.c includes this file twice. */
APPLET(uffd_snapshot)
