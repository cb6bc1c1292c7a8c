#include "cbor.h"

#include <string.h>

/* A head: major type (0-7) and its argument, as short as it goes (RFC 8949 section 3). */
static void head(roost_frame_writer_t *w, uint8_t major, uint32_t arg)
{
    uint8_t m = (uint8_t)(major << 5);
    if (arg < 24) {
        roost_frame_put(w, (uint8_t)(m | arg));
    } else if (arg <= 0xFF) {
        roost_frame_put(w, m | 24);
        roost_frame_put(w, (uint8_t)arg);
    } else if (arg <= 0xFFFF) {
        roost_frame_put(w, m | 25);
        roost_frame_put(w, (uint8_t)(arg >> 8));
        roost_frame_put(w, (uint8_t)arg);
    } else {
        roost_frame_put(w, m | 26);
        roost_frame_put(w, (uint8_t)(arg >> 24));
        roost_frame_put(w, (uint8_t)(arg >> 16));
        roost_frame_put(w, (uint8_t)(arg >> 8));
        roost_frame_put(w, (uint8_t)arg);
    }
}

void roost_cbor_array(roost_frame_writer_t *w, uint8_t n)
{
    head(w, 4, n);
}

void roost_cbor_map(roost_frame_writer_t *w, uint8_t n)
{
    head(w, 5, n);
}

void roost_cbor_int(roost_frame_writer_t *w, int32_t v)
{
    if (v >= 0) {
        head(w, 0, (uint32_t)v);
    } else {
        head(w, 1, (uint32_t)(-1 - v)); /* -1 - v cannot overflow for v < 0 */
    }
}

void roost_cbor_text_n(roost_frame_writer_t *w, const uint8_t *s, uint8_t n)
{
    head(w, 3, n);
    roost_frame_write(w, s, n);
}

void roost_cbor_text(roost_frame_writer_t *w, const char *s)
{
    roost_cbor_text_n(w, (const uint8_t *)s, (uint8_t)strlen(s));
}

void roost_cbor_float32(roost_frame_writer_t *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits); /* IEEE 754 single on the AVR and on the host alike */
    roost_frame_put(w, 0xFA);
    roost_frame_put(w, (uint8_t)(bits >> 24));
    roost_frame_put(w, (uint8_t)(bits >> 16));
    roost_frame_put(w, (uint8_t)(bits >> 8));
    roost_frame_put(w, (uint8_t)bits);
}

void roost_cbor_bool(roost_frame_writer_t *w, uint8_t v)
{
    roost_frame_put(w, v ? 0xF5 : 0xF4);
}
