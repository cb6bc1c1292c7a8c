/* A tiny CBOR encoder; see cbor.h. */
#include "cbor.h"

#include <string.h>

void cbor_init(cbor_writer *w, uint8_t *buf, size_t cap) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->overflow = 0;
}

static void put(cbor_writer *w, const uint8_t *bytes, size_t n) {
  if (w->overflow || n > w->cap - w->len) {
    w->overflow = 1;
    return;
  }
  memcpy(w->buf + w->len, bytes, n);
  w->len += n;
}

/* A major type with its argument, in the shortest form. */
static void head(cbor_writer *w, uint8_t major, uint64_t arg) {
  uint8_t b[9];
  size_t n;
  int i;
  if (arg < 24) {
    b[0] = (uint8_t)(major << 5 | arg);
    n = 1;
  } else if (arg <= 0xff) {
    b[0] = (uint8_t)(major << 5 | 24);
    n = 2;
  } else if (arg <= 0xffff) {
    b[0] = (uint8_t)(major << 5 | 25);
    n = 3;
  } else if (arg <= 0xffffffffu) {
    b[0] = (uint8_t)(major << 5 | 26);
    n = 5;
  } else {
    b[0] = (uint8_t)(major << 5 | 27);
    n = 9;
  }
  for (i = 1; i < (int)n; i++) b[i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
  put(w, b, n);
}

void cbor_array(cbor_writer *w, size_t items) { head(w, 4, items); }

void cbor_map(cbor_writer *w, size_t pairs) { head(w, 5, pairs); }

void cbor_int(cbor_writer *w, int64_t value) {
  if (value >= 0)
    head(w, 0, (uint64_t)value);
  else
    head(w, 1, (uint64_t)(-(value + 1)));
}

void cbor_text(cbor_writer *w, const char *text) {
  size_t n = strlen(text);
  head(w, 3, n);
  put(w, (const uint8_t *)text, n);
}

void cbor_number(cbor_writer *w, double value) {
  const double limit = 9007199254740992.0; /* 2^53: every whole double below it is exact as an integer */
  float f = (float)value;
  uint8_t b[9];
  int i;
  if (value == value && value > -limit && value < limit && value == (double)(int64_t)value) {
    cbor_int(w, (int64_t)value);
  } else if ((double)f == value || value != value) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    b[0] = 0xfa;
    for (i = 0; i < 4; i++) b[1 + i] = (uint8_t)(bits >> (24 - 8 * i));
    put(w, b, 5);
  } else {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    b[0] = 0xfb;
    for (i = 0; i < 8; i++) b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    put(w, b, 9);
  }
}

int cbor_ok(const cbor_writer *w) { return !w->overflow; }
