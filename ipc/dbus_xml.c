/*
 * dbus_xml.c — hearth-dbus-xml: writes the introspection XML of
 * org.hearth.Hearth1, generated from the interface tables in dbus.c, to the
 * file named on the command line (or stdout). Behind `ninja dbus-xml`, which
 * keeps docs/org.hearth.Hearth1.xml in step with the code.
 */
#include "dbus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char *xml;
    if (ipc_dbus_introspect(&xml) < 0) {
        fprintf(stderr, "hearth-dbus-xml: out of memory\n");
        return 1;
    }
    FILE *f = argc > 1 ? fopen(argv[1], "w") : stdout;
    if (!f) {
        fprintf(stderr, "hearth-dbus-xml: cannot write %s\n", argv[1]);
        free(xml);
        return 1;
    }
    size_t n = strlen(xml);
    int bad = fwrite(xml, 1, n, f) != n;
    if (f != stdout)
        bad |= fclose(f) != 0;
    free(xml);
    if (bad) {
        fprintf(stderr, "hearth-dbus-xml: cannot write %s\n", argc > 1 ? argv[1] : "stdout");
        return 1;
    }
    return 0;
}
