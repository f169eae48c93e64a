/* pb_csv: CSV rows built in memory (RFC 4180 quoting), whole files read back
 * into a table of strings, and the column contract of the results files. */
#ifndef PB_CSV_H
#define PB_CSV_H

#include <stddef.h>
#include <stdio.h>

/* A row being built: fields are appended, quoted when needed, comma-separated. */
typedef struct pb_csv_row {
    char *s;
    size_t len, cap;
    int nfields;
    int oom;            /* 1 after a failed allocation: the row is unusable */
} pb_csv_row;

void pb_csv_row_init(pb_csv_row *r);
void pb_csv_row_free(pb_csv_row *r);
void pb_csv_str(pb_csv_row *r, const char *s);        /* NULL = empty field */
void pb_csv_int(pb_csv_row *r, long long v);
void pb_csv_num(pb_csv_row *r, double v);             /* %.6g; NaN/Inf written as text */
void pb_csv_empty(pb_csv_row *r);
/* Ends the row with '\n'. Returns PB_OK, or PB_ENOMEM if any append failed. */
int pb_csv_end(pb_csv_row *r);

/* Writes a header line from a NULL-terminated column list. */
void pb_csv_header(FILE *f, const char *const *cols);

/* A whole file: the header and rows of strings (empty fields are ""). */
typedef struct pb_csv_table {
    int ncols, nrows;
    char **head;        /* [ncols] */
    char ***rows;       /* [nrows][ncols]; short rows are padded with "" */
} pb_csv_table;

/* Splits the first record of line in place (unquoting); returns the number of
 * fields, of which at most maxf are stored. */
int pb_csv_split(char *line, char **fields, int maxf);
/* The same from *pp, which is moved past the record (and its line end). */
int pb_csv_split_next(char **pp, char **fields, int maxf);

int pb_csv_read(const char *path, pb_csv_table *t, char *err, size_t errlen);
void pb_csv_table_free(pb_csv_table *t);
int pb_csv_col(const pb_csv_table *t, const char *name);   /* index or -1 */
/* Cell (row, column index) as a string ("" if col < 0) or a number (NaN if empty). */
const char *pb_csv_get(const pb_csv_table *t, int row, int col);
double pb_csv_getnum(const pb_csv_table *t, int row, int col);

/* The column contracts; new columns are only ever appended. NULL-terminated. */
extern const char *const pb_csv_cells_cols[];
extern const char *const pb_csv_curves_cols[];
extern const char *const pb_csv_layers_cols[];
extern const char *const pb_csv_metrics_cols[];

#endif
