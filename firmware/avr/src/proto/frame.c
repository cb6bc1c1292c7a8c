#include "frame.h"

#include "crc16.h"

void roost_frame_begin(roost_frame_writer_t *w, uint8_t *out, uint16_t cap, uint8_t type, uint8_t seq)
{
    roost_cobs_begin(&w->cobs, out, cap);
    w->crc = 0;
    w->payload_len = 0;
    w->too_long = 0;
    roost_frame_put(w, ROOST_VERSION);
    roost_frame_put(w, type);
    roost_frame_put(w, seq);
    w->payload_len = 0; /* the header is not payload */
}

void roost_frame_put(roost_frame_writer_t *w, uint8_t byte)
{
    if (++w->payload_len > ROOST_MAX_PAYLOAD) {
        w->too_long = 1;
        return;
    }
    w->crc = roost_crc16_update(w->crc, byte);
    roost_cobs_put(&w->cobs, byte);
}

void roost_frame_write(roost_frame_writer_t *w, const uint8_t *bytes, uint16_t n)
{
    while (n--) {
        roost_frame_put(w, *bytes++);
    }
}

uint16_t roost_frame_end(roost_frame_writer_t *w)
{
    uint16_t crc = w->crc;
    roost_cobs_put(&w->cobs, (uint8_t)(crc >> 8));
    roost_cobs_put(&w->cobs, (uint8_t)crc);
    uint16_t n = roost_cobs_end(&w->cobs);
    return w->too_long ? 0 : n;
}

uint16_t roost_frame_encode(uint8_t *out, uint16_t cap, uint8_t type, uint8_t seq, const uint8_t *payload,
                            uint16_t payload_len)
{
    roost_frame_writer_t w;
    roost_frame_begin(&w, out, cap, type, seq);
    roost_frame_write(&w, payload, payload_len);
    return roost_frame_end(&w);
}

void roost_deframer_reset(roost_deframer_t *d)
{
    d->len = 0;
    d->skipping = 0;
}

uint8_t roost_frame_decode(uint8_t *buf, uint16_t len, roost_frame_t *frame)
{
    if (len > ROOST_MAX_ENCODED) {
        return ROOST_RX_OVERSIZE;
    }
    int16_t n = roost_cobs_decode(buf, len);
    if (n < 0 || n < ROOST_MIN_FRAME) {
        return ROOST_RX_TRUNCATED;
    }
    if (n > ROOST_MAX_FRAME) {
        return ROOST_RX_OVERSIZE;
    }
    uint16_t crc = 0;
    for (int16_t i = 0; i < n; i++) {
        crc = roost_crc16_update(crc, buf[i]);
    }
    if (crc != 0) {
        return ROOST_RX_CRC;
    }
    if (buf[0] != ROOST_VERSION) {
        return ROOST_RX_VERSION;
    }
    frame->type = buf[1];
    frame->seq = buf[2];
    frame->payload = buf + ROOST_HEADER_LEN;
    frame->payload_len = (uint8_t)(n - ROOST_MIN_FRAME);
    frame->crc = (uint16_t)((uint16_t)buf[n - 2] << 8 | buf[n - 1]);
    return ROOST_RX_FRAME;
}

uint8_t roost_deframer_push(roost_deframer_t *d, uint8_t byte, roost_frame_t *frame)
{
    if (byte == 0) {
        uint16_t len = d->len;
        d->len = 0;
        if (d->skipping) { /* the end of an over-long run, already counted */
            d->skipping = 0;
            return ROOST_RX_NONE;
        }
        if (len == 0) { /* back-to-back delimiters: a sender resynchronising, not an error */
            return ROOST_RX_NONE;
        }
        return roost_frame_decode(d->buf, len, frame);
    }
    if (d->skipping) {
        return ROOST_RX_NONE;
    }
    if (d->len >= ROOST_MAX_ENCODED) {
        d->len = 0;
        d->skipping = 1;
        return ROOST_RX_OVERSIZE;
    }
    d->buf[d->len++] = byte;
    return ROOST_RX_NONE;
}
