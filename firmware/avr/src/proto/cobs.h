/* COBS (consistent overhead byte stuffing): removes every 0x00 from a frame, one byte of cost per 254.
 *
 * The encoder is streaming (a byte at a time into the output buffer, no copy of the frame); the decoder
 * works in place. Both give the bytes Python's `cobs` package gives (drivers/roostserial/frame.py).
 */
#ifndef ROOST_COBS_H
#define ROOST_COBS_H

#include <stdint.h>

typedef struct {
    uint8_t *out;      /* where the encoded bytes go */
    uint16_t cap;      /* size of out */
    uint16_t pos;      /* next free byte of out */
    uint16_t code_pos; /* where the current block's code byte goes */
    uint8_t code;      /* the current block's code: 1 + bytes in it */
    uint8_t full;      /* the last block ended at 254 bytes: open a new one only if more bytes come */
    uint8_t overflow;  /* out was too small: the result is unusable */
} roost_cobs_enc_t;

void roost_cobs_begin(roost_cobs_enc_t *e, uint8_t *out, uint16_t cap);
void roost_cobs_put(roost_cobs_enc_t *e, uint8_t byte);
/* Close the last block and append the 0x00 delimiter; the wire length, or 0 when out was too small. */
uint16_t roost_cobs_end(roost_cobs_enc_t *e);

/* Decode `len` COBS bytes (no delimiter) in place; the decoded length, or -1 when a code byte points past
 * the end or a 0x00 is inside (the frame was cut). */
int16_t roost_cobs_decode(uint8_t *buf, uint16_t len);

#endif
