/* pb_check: the range table, the command-line parse and "did you mean". */
#include <math.h>
#include <string.h>

#include "engine/pb_check.h"
#include "engine/pb_util.h"
#include "tap.h"

static int refused(const char *range, double v, const char *want)
{
    char err[PB_ERRLEN] = "";
    int rc = pb_check_num(pb_range_find(range), v, err, sizeof err);
    return rc == PB_EUSAGE && strstr(err, want) != NULL;
}

static int parsed(const char *range, const char *text, double want)
{
    char err[PB_ERRLEN];
    double v = -1;
    return pb_check_parse(pb_range_find(range), text, &v, err, sizeof err) == PB_OK && v == want;
}

static int parse_refused(const char *range, const char *text, const char *want)
{
    char err[PB_ERRLEN] = "";
    double v = -1;
    int rc = pb_check_parse(pb_range_find(range), text, &v, err, sizeof err);
    return rc == PB_EUSAGE && v == -1 && strstr(err, want) != NULL;
}

int main(void)
{
    tap_plan(20);
    static const char *const keys[] = {"width", "hidden", "label", NULL};
    static const char *const methods[] = {"magnitude", "global_magnitude", "snip", "synflow", NULL};

    ok(pb_range_find("epochs") && pb_range_find("conv pad") && !pb_range_find("epoch"),
       "ranges are found by their exact name only");
    ok(refused("epochs", 1e10, "10000000000 is not an integer in [0, 100000]"),
       "epochs = 1e10 is refused with the range (no int wrap)");
    ok(refused("epochs", 2.5, "2.5 is not an integer"), "a fraction of an epoch is not an integer");
    ok(refused("width", NAN, "nan is not a number in [0.001, 1000]"), "a NaN width is refused");
    ok(refused("width", -NAN, "nan is not"), "0/0 (a negative NaN) prints as nan");
    ok(refused("width", 1e-300, "1e-300 is not a number in [0.001, 1000]"), "a width of 1e-300 is refused");
    ok(refused("lr", INFINITY, "inf is not a number in [0, 100]"), "an infinite learning rate is refused");
    ok(refused("batch", 2147483648.0, "2147483648 is not an integer in [1, 65536]"),
       "batch = 2^31 names the real limit");
    ok(refused("conv pad", 1073741824.0, "[0, 256]"), "a conv pad of 2^30 is refused");
    ok(refused("sparsity", 1.0, "is not a number in [0, 1)") && pb_check_num(pb_range_find("sparsity"), 0.99, NULL, 0) == PB_OK,
       "an open upper bound: sparsity 1 refused, 0.99 accepted");
    ok(refused("fraction", 0.0, "(0, 1]") && pb_check_num(pb_range_find("fraction"), 1.0, NULL, 0) == PB_OK,
       "an open lower bound: fraction 0 refused, 1 accepted");
    ok(parsed("seed", "9007199254740992", 9007199254740992.0) && parsed("epochs", "0", 0),
       "integers parse exactly up to 2^53");
    ok(parse_refused("epochs", "1e10", "'1e10' is not an integer in [0, 100000]") &&
           parse_refused("epochs", "4294967297", "not an integer"),
       "a command-line 1e10 or 2^32+1 is refused, not wrapped");
    ok(parse_refused("width", "nan", "not a number") && parse_refused("width", "", "not a number") &&
           parse_refused("width", "1x", "not a number"),
       "nan, an empty word and trailing junk are refused");
    ok(parse_refused("seed", "99999999999999999999", "not an integer"), "an integer too large to read is refused");
    ok(pb_check_distance("hiden", "hidden") == 1 && pb_check_distance("hidedn", "hidden") == 1 &&
           pb_check_distance("abc", "") == 3,
       "edit distance counts deletions, transpositions and insertions");
    ok(pb_check_suggest("hiden", keys) && !strcmp(pb_check_suggest("hiden", keys), "hidden"),
       "hiden suggests hidden");
    ok(pb_check_suggest("magnitud", methods) && !strcmp(pb_check_suggest("magnitud", methods), "magnitude"),
       "magnitud suggests magnitude");
    ok(pb_check_suggest("zzz", keys) == NULL && pb_check_suggest("w", keys) == NULL,
       "no suggestion for a word near nothing, or too short to judge");
    const pb_keyset sets[] = {{.kind = "a", .keys = keys}, {.kind = NULL}};
    ok(pb_keyset_find(sets, "a") == keys && pb_keyset_find(sets, "b") == NULL, "keysets are found by kind");
    return tap_done();
}
