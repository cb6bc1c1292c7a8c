/* A tiny CBOR encoder (RFC 8949): just what a SenML pack needs. Portable C99, no allocation.
 *
 * Writes into a caller's buffer; on overflow it stops writing and cbor_ok() turns false, so a
 * caller checks once at the end. Numbers take their shortest exact form: an integer when the
 * value is whole (and within +-2^53), else a 32-bit float when that is exact, else a 64-bit one.
 */
#ifndef ROOST_CBOR_H
#define ROOST_CBOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t *buf;
  size_t cap;
  size_t len;
  int overflow;
} cbor_writer;

void cbor_init(cbor_writer *w, uint8_t *buf, size_t cap);
void cbor_array(cbor_writer *w, size_t items);
void cbor_map(cbor_writer *w, size_t pairs);
void cbor_int(cbor_writer *w, int64_t value);
void cbor_text(cbor_writer *w, const char *text);
void cbor_number(cbor_writer *w, double value);
int cbor_ok(const cbor_writer *w);

#endif
