#include "cobs.h"

static void emit(roost_cobs_enc_t *e, uint16_t at, uint8_t byte)
{
    if (at < e->cap) {
        e->out[at] = byte;
    } else {
        e->overflow = 1;
    }
}

void roost_cobs_begin(roost_cobs_enc_t *e, uint8_t *out, uint16_t cap)
{
    e->out = out;
    e->cap = cap;
    e->code_pos = 0;
    e->pos = 1;
    e->code = 1;
    e->full = 0;
    e->overflow = 0;
}

void roost_cobs_put(roost_cobs_enc_t *e, uint8_t byte)
{
    if (e->full) { /* more bytes after a block of 254: a new block starts */
        e->full = 0;
        e->code_pos = e->pos++;
        e->code = 1;
    }
    if (byte == 0) {
        emit(e, e->code_pos, e->code);
        e->code_pos = e->pos++;
        e->code = 1;
        return;
    }
    emit(e, e->pos++, byte);
    if (++e->code == 0xFF) {
        emit(e, e->code_pos, 0xFF);
        e->full = 1;
    }
}

uint16_t roost_cobs_end(roost_cobs_enc_t *e)
{
    if (!e->full) {
        emit(e, e->code_pos, e->code);
    }
    emit(e, e->pos++, 0x00);
    return e->overflow ? 0 : e->pos;
}

int16_t roost_cobs_decode(uint8_t *buf, uint16_t len)
{
    uint16_t in = 0;
    uint16_t out = 0;
    while (in < len) {
        uint8_t code = buf[in++];
        if (code == 0 || (uint16_t)(in + code - 1) > len) {
            return -1;
        }
        for (uint8_t k = 1; k < code; k++) {
            uint8_t b = buf[in++];
            if (b == 0) {
                return -1;
            }
            buf[out++] = b;
        }
        if (code != 0xFF && in < len) {
            buf[out++] = 0;
        }
    }
    return (int16_t)out;
}
