/* A SenML pack (RFC 8428) in CBOR with integer labels, as a Roost gateway takes it on POST /telemetry:
 * the base name is "{node}:", each record's name is a metric. */
#ifndef ROOST_SENML_H
#define ROOST_SENML_H

#include <stddef.h>
#include <stdint.h>

#define SENML_MAX_NAME 64

typedef struct {
  const char *name; /* metric: letters, digits and - . / _ */
  const char *unit; /* SenML unit ("Cel", "%RH", ...) or NULL */
  double value;
} senml_reading;

/* Encodes the pack into buf. has_time: put base_time in "bt" (seconds since 1970, or relative
 * seconds when below 2^28: -5 is five seconds before the gateway gets it); without it the
 * gateway stamps the readings when it receives them. Returns the length, 0 when it does not fit. */
size_t senml_pack(uint8_t *buf, size_t cap, const char *node, int has_time, double base_time,
                  const senml_reading *readings, size_t n);

/* Whether a node id / metric name follows Roost's naming rules (docs/protocols/coap.md). */
int senml_valid_node(const char *node);
int senml_valid_metric(const char *metric);

#endif
