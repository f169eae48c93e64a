/* Replays inputs through a fuzz target's entry (pb_fuzz.h) with the normal
 * build, so every input a fuzzer found keeps being checked by `make check`.
 *   fuzz_replay TARGET [--refused] FILE...
 * prints one line per file, "refused: MESSAGE" or "accepted", and exits 1 if
 * --refused was given and some file was accepted or refused without a
 * message naming what it read. A crash is the test's failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_fuzz.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TARGET [--refused] FILE...\n", argv[0]);
        return 2;
    }
    pb_fuzz_fn fn = pb_fuzz_find(argv[1]);
    if (!fn) {
        fprintf(stderr, "%s: unknown target %s (ckpt, idx, cifar, row, lua)\n", argv[0], argv[1]);
        return 2;
    }
    int refused = 0, bad = 0, i = 2;
    if (!strcmp(argv[i], "--refused"))
        refused = 1, i++;
    for (; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "%s: cannot open %s\n", argv[0], argv[i]);
            return 2;
        }
        size_t cap = 1 << 16, n = 0;
        unsigned char *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
            if ((n += got) == cap) {
                unsigned char *q = realloc(buf, cap *= 2);
                if (!q)
                    free(buf);
                buf = q;
            }
        fclose(f);
        if (!buf)
            return 2;
        char err[1024] = "";
        int rc = fn(buf, n, err, sizeof err);
        free(buf);
        if (rc == 0)
            printf("%s: accepted\n", argv[i]);
        else
            printf("%s: refused: %s\n", argv[i], err);
        if (refused && (rc == 0 || !err[0]))
            bad = 1;
    }
    return bad;
}
