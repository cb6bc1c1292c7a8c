/* Where readings come from (a file, a command's output, a fixed value) and where commands go (outputs). */
#ifndef ROOST_IO_H
#define ROOST_IO_H

#include <stddef.h>

#include "config.h"

/* Reads a source: its number times scale plus offset. Returns 0, or -1 with what went wrong in err. */
int source_read(source *s, double *value, char *err, size_t errlen);
/* Sets an output: writes the value to its file, or runs its command with $ROOST_VALUE and $ROOST_OUTPUT. */
int output_write(const output *o, long value, char *err, size_t errlen);

#endif
