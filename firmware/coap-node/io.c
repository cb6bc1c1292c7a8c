/* Sources and outputs; see io.h. */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int parse(const char *what, const char *text, double *out, char *err, size_t errlen) {
  char *end;
  errno = 0;
  *out = strtod(text, &end);
  while (isspace((unsigned char)*end)) end++;
  if (end == text || errno != 0 || !isfinite(*out)) {
    char shown[40];
    size_t n = strcspn(text, "\r\n");
    snprintf(shown, sizeof shown, "%.*s", (int)(n < 32 ? n : 32), text);
    snprintf(err, errlen, "%s gave '%s', which is not a number", what, shown);
    return -1;
  }
  return 0;
}

int source_read(source *s, double *value, char *err, size_t errlen) {
  char line[128];
  double raw;
  if (s->kind == SOURCE_VALUE) {
    raw = s->value;
    s->value += s->step;
  } else if (s->kind == SOURCE_FILE) {
    FILE *f = fopen(s->arg, "r");
    if (f == NULL) {
      snprintf(err, errlen, "cannot read %s: %s", s->arg, strerror(errno));
      return -1;
    }
    if (fgets(line, sizeof line, f) == NULL) line[0] = '\0';
    fclose(f);
    if (parse(s->arg, line, &raw, err, errlen) != 0) return -1;
  } else {
    int status;
    FILE *p = popen(s->arg, "r");
    if (p == NULL) {
      snprintf(err, errlen, "cannot run '%s': %s", s->arg, strerror(errno));
      return -1;
    }
    if (fgets(line, sizeof line, p) == NULL) line[0] = '\0';
    while (fgetc(p) != EOF) {
    }
    status = pclose(p);
    if (status != 0) {
      snprintf(err, errlen, "'%s' failed (exit status %d)", s->arg, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      return -1;
    }
    if (parse(s->arg, line, &raw, err, errlen) != 0) return -1;
  }
  *value = raw * s->scale + s->offset;
  if (!isfinite(*value)) {
    snprintf(err, errlen, "the value is out of range");
    return -1;
  }
  return 0;
}

int output_write(const output *o, long value, char *err, size_t errlen) {
  char text[24];
  snprintf(text, sizeof text, "%ld", value);
  if (o->kind == OUTPUT_FILE) {
    FILE *f = fopen(o->arg, "w");
    int bad;
    if (f == NULL) {
      snprintf(err, errlen, "cannot write %s: %s", o->arg, strerror(errno));
      return -1;
    }
    bad = fprintf(f, "%s\n", text) < 0;
    bad |= fclose(f) != 0;
    if (bad) {
      snprintf(err, errlen, "cannot write %s: %s", o->arg, strerror(errno));
      return -1;
    }
    return 0;
  }
  {
    int status;
    setenv("ROOST_VALUE", text, 1);
    setenv("ROOST_OUTPUT", o->name, 1);
    status = system(o->arg);
    if (status != 0) {
      snprintf(err, errlen, "'%s' failed (exit status %d)", o->arg,
               status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      return -1;
    }
  }
  return 0;
}
