/* The node's settings: from a config file (key = value lines) and/or the command line (--key value). */
#ifndef ROOST_CONFIG_H
#define ROOST_CONFIG_H

#include <stddef.h>

#define MAX_SOURCES 16
#define MAX_OUTPUTS 8
#define MAX_ARG 256

enum source_kind { SOURCE_FILE, SOURCE_COMMAND, SOURCE_VALUE };
enum output_kind { OUTPUT_FILE, OUTPUT_COMMAND };

typedef struct {
  char name[65];
  char unit[17]; /* "" for none */
  enum source_kind kind;
  char arg[MAX_ARG]; /* the file's path or the command line */
  double scale, offset;
  double value, step; /* SOURCE_VALUE: the next value, and what is added after each reading */
} source;

typedef struct {
  char name[65];
  enum output_kind kind;
  char arg[MAX_ARG];
} output;

typedef struct {
  char gateway[MAX_ARG];
  char node[65];
  unsigned interval_s;
  unsigned queue;        /* packs kept while the gateway does not answer */
  unsigned retry_s;      /* wait before sending a pack again after the gateway did not answer */
  unsigned ack_timeout_ms; /* CoAP ACK_TIMEOUT (RFC 7252: 2000) */
  unsigned max_retransmit; /* CoAP MAX_RETRANSMIT (RFC 7252: 4) */
  unsigned observe_refresh_s;
  unsigned verbose; /* 0: warnings, 1: every exchange, 2: libcoap's debug too */
  source sources[MAX_SOURCES];
  size_t n_sources;
  output outputs[MAX_OUTPUTS];
  size_t n_outputs;
} config;

void config_defaults(config *c);
/* Applies one setting; returns 0, or -1 with what is wrong in err. */
int config_set(config *c, const char *key, const char *value, char *err, size_t errlen);
/* Reads a config file; returns 0, or -1 with the file, line and what is wrong in err. */
int config_file(config *c, const char *path, char *err, size_t errlen);
/* Checks the whole (node id, at least one source); returns 0 or -1 with err. */
int config_check(const config *c, char *err, size_t errlen);

#endif
