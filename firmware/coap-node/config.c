/* Settings; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "senml.h"

void config_defaults(config *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->gateway, "coap://[::1]:5683");
  c->interval_s = 60;
  c->queue = 60;
  c->retry_s = 5;
  c->ack_timeout_ms = 2000;
  c->max_retransmit = 4;
  c->observe_refresh_s = 120;
}

static int copy(char *dst, size_t cap, const char *src, const char *what, char *err, size_t errlen) {
  if (strlen(src) >= cap) {
    snprintf(err, errlen, "%s is too long (at most %zu characters)", what, cap - 1);
    return -1;
  }
  strcpy(dst, src);
  return 0;
}

static int number(const char *text, double *out) {
  char *end;
  errno = 0;
  *out = strtod(text, &end);
  while (isspace((unsigned char)*end)) end++;
  return end != text && *end == '\0' && errno == 0 && isfinite(*out) ? 0 : -1;
}

static int whole(const char *text, unsigned lo, unsigned hi, unsigned *out) {
  double d;
  if (number(text, &d) != 0 || d != floor(d) || d < lo || d > hi) return -1;
  *out = (unsigned)d;
  return 0;
}

/* "NAME key=value ... kind=ARG": the first word names it; "command=" takes the rest of the line. */
static int parse_source(config *c, const char *spec, char *err, size_t errlen) {
  source *s;
  const char *p = spec;
  int have_kind = 0;
  if (c->n_sources >= MAX_SOURCES) {
    snprintf(err, errlen, "too many sources (at most %d)", MAX_SOURCES);
    return -1;
  }
  s = &c->sources[c->n_sources];
  memset(s, 0, sizeof *s);
  s->scale = 1.0;
  while (isspace((unsigned char)*p)) p++;
  {
    size_t n = strcspn(p, " \t");
    if (n == 0 || n >= sizeof s->name) {
      snprintf(err, errlen, "a source starts with its metric name (1 to 64 characters): '%s'", spec);
      return -1;
    }
    memcpy(s->name, p, n);
    s->name[n] = '\0';
    p += n;
  }
  if (!senml_valid_metric(s->name)) {
    snprintf(err, errlen, "metric name '%s': start with a letter or digit, then only A-Z a-z 0-9 - . / _", s->name);
    return -1;
  }
  while (*p) {
    char key[16], val[MAX_ARG];
    size_t n;
    const char *eq;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) break;
    eq = strchr(p, '=');
    n = strcspn(p, " \t=");
    if (eq == NULL || p + n != eq || n == 0 || n >= sizeof key) {
      snprintf(err, errlen, "source %s: expected key=value at '%s'", s->name, p);
      return -1;
    }
    memcpy(key, p, n);
    key[n] = '\0';
    p = eq + 1;
    n = strcmp(key, "command") == 0 ? strlen(p) : strcspn(p, " \t");
    if (n >= sizeof val) {
      snprintf(err, errlen, "source %s: %s is too long", s->name, key);
      return -1;
    }
    memcpy(val, p, n);
    val[n] = '\0';
    p += n;
    if (strcmp(key, "unit") == 0) {
      if (copy(s->unit, sizeof s->unit, val, "a unit", err, errlen)) return -1;
    } else if (strcmp(key, "scale") == 0 || strcmp(key, "offset") == 0 || strcmp(key, "step") == 0) {
      double d;
      if (number(val, &d) != 0) {
        snprintf(err, errlen, "source %s: %s must be a number, not '%s'", s->name, key, val);
        return -1;
      }
      *(key[0] == 's' ? (key[1] == 'c' ? &s->scale : &s->step) : &s->offset) = d;
    } else if (strcmp(key, "file") == 0 || strcmp(key, "command") == 0 || strcmp(key, "value") == 0) {
      if (have_kind++) {
        snprintf(err, errlen, "source %s: give one of file=, command=, value=", s->name);
        return -1;
      }
      s->kind = key[0] == 'f' ? SOURCE_FILE : key[0] == 'c' ? SOURCE_COMMAND : SOURCE_VALUE;
      if (s->kind == SOURCE_VALUE && number(val, &s->value) != 0) {
        snprintf(err, errlen, "source %s: value must be a number, not '%s'", s->name, val);
        return -1;
      }
      strcpy(s->arg, val);
      if (s->arg[0] == '\0') {
        snprintf(err, errlen, "source %s: %s= is empty", s->name, key);
        return -1;
      }
    } else {
      snprintf(err, errlen, "source %s: unknown setting '%s' (unit, scale, offset, step, file, command, value)",
               s->name, key);
      return -1;
    }
  }
  if (!have_kind) {
    snprintf(err, errlen, "source %s: say where its value comes from: file=, command= or value=", s->name);
    return -1;
  }
  c->n_sources++;
  return 0;
}

/* "NAME file=PATH" or "NAME command=COMMAND LINE" (the command gets the value in $ROOST_VALUE). */
static int parse_output(config *c, const char *spec, char *err, size_t errlen) {
  output *o;
  const char *p = spec, *eq;
  size_t n;
  if (c->n_outputs >= MAX_OUTPUTS) {
    snprintf(err, errlen, "too many outputs (at most %d)", MAX_OUTPUTS);
    return -1;
  }
  o = &c->outputs[c->n_outputs];
  memset(o, 0, sizeof *o);
  while (isspace((unsigned char)*p)) p++;
  n = strcspn(p, " \t");
  if (n == 0 || n >= sizeof o->name) {
    snprintf(err, errlen, "an output starts with its name: '%s'", spec);
    return -1;
  }
  memcpy(o->name, p, n);
  p += n;
  while (isspace((unsigned char)*p)) p++;
  eq = strchr(p, '=');
  if (strncmp(p, "file=", 5) == 0) {
    o->kind = OUTPUT_FILE;
  } else if (strncmp(p, "command=", 8) == 0) {
    o->kind = OUTPUT_COMMAND;
  } else {
    snprintf(err, errlen, "output %s: give file=PATH or command=COMMAND", o->name);
    return -1;
  }
  if (copy(o->arg, sizeof o->arg, eq + 1, "an output's file or command", err, errlen)) return -1;
  if (o->arg[0] == '\0') {
    snprintf(err, errlen, "output %s: the file or command is empty", o->name);
    return -1;
  }
  c->n_outputs++;
  return 0;
}

int config_set(config *c, const char *key, const char *value, char *err, size_t errlen) {
  if (strcmp(key, "gateway") == 0) return copy(c->gateway, sizeof c->gateway, value, "gateway", err, errlen);
  if (strcmp(key, "node") == 0) return copy(c->node, sizeof c->node, value, "node", err, errlen);
  if (strcmp(key, "source") == 0) return parse_source(c, value, err, errlen);
  if (strcmp(key, "output") == 0) return parse_output(c, value, err, errlen);
  {
    static const struct {
      const char *key;
      size_t offset;
      unsigned lo, hi;
    } ints[] = {
        {"interval", offsetof(config, interval_s), 1, 86400},
        {"queue", offsetof(config, queue), 1, 10000},
        {"retry", offsetof(config, retry_s), 1, 3600},
        {"ack-timeout-ms", offsetof(config, ack_timeout_ms), 100, 60000},
        {"max-retransmit", offsetof(config, max_retransmit), 0, 20},
        {"observe-refresh", offsetof(config, observe_refresh_s), 10, 86400},
        {"verbose", offsetof(config, verbose), 0, 2},
    };
    size_t i;
    for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
      if (strcmp(key, ints[i].key) == 0) {
        if (whole(value, ints[i].lo, ints[i].hi, (unsigned *)((char *)c + ints[i].offset)) != 0) {
          snprintf(err, errlen, "%s must be a whole number from %u to %u, not '%s'", key, ints[i].lo, ints[i].hi,
                   value);
          return -1;
        }
        return 0;
      }
    }
  }
  snprintf(err, errlen,
           "unknown setting '%s' (gateway, node, interval, source, output, queue, retry, ack-timeout-ms, "
           "max-retransmit, observe-refresh, verbose)",
           key);
  return -1;
}

static char *trim(char *s) {
  char *end;
  while (isspace((unsigned char)*s)) s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
  return s;
}

int config_file(config *c, const char *path, char *err, size_t errlen) {
  char line[1024], inner[400];
  unsigned lineno = 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot read the config file %s: %s", path, strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof line, f) != NULL) {
    char *key, *value, *eq;
    lineno++;
    key = trim(line);
    if (*key == '\0' || *key == '#') continue;
    eq = strchr(key, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s line %u: expected 'key = value'", path, lineno);
      fclose(f);
      return -1;
    }
    *eq = '\0';
    value = trim(eq + 1);
    key = trim(key);
    if (config_set(c, key, value, inner, sizeof inner) != 0) {
      snprintf(err, errlen, "%s line %u: %s", path, lineno, inner);
      fclose(f);
      return -1;
    }
  }
  fclose(f);
  return 0;
}

int config_check(const config *c, char *err, size_t errlen) {
  if (c->node[0] == '\0') {
    snprintf(err, errlen, "say which node this is: node = ID (or --node ID)");
    return -1;
  }
  if (!senml_valid_node(c->node)) {
    snprintf(err, errlen, "node id '%s': start with a letter or digit, then only A-Z a-z 0-9 - : . / _", c->node);
    return -1;
  }
  if (c->n_sources == 0) {
    snprintf(err, errlen, "no source to read: add source = NAME file=PATH (or command=, value=)");
    return -1;
  }
  if (strncmp(c->gateway, "coap://", 7) != 0) {
    snprintf(err, errlen, "gateway '%s' must be a coap:// URI (coap://[::1]:5683)", c->gateway);
    return -1;
  }
  return 0;
}
