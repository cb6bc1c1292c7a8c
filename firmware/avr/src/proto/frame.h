/* Frames of the Roost serial protocol v1 (docs/protocols/serial.md, "Framing").
 *
 * Before COBS a frame is: version (1), type, seq, payload (0-251 bytes), CRC-16/XMODEM high byte first.
 * The writer streams header, payload and CRC through the COBS encoder straight into the wire buffer.
 * The deframer takes the line a byte at a time into one 258-byte buffer, cuts at 0x00 and checks.
 */
#ifndef ROOST_FRAME_H
#define ROOST_FRAME_H

#include <stdint.h>

#include "cobs.h"

#define ROOST_VERSION 1
#define ROOST_HEADER_LEN 3
#define ROOST_CRC_LEN 2
#define ROOST_MIN_FRAME (ROOST_HEADER_LEN + ROOST_CRC_LEN)
#define ROOST_MAX_FRAME 256
#define ROOST_MAX_PAYLOAD (ROOST_MAX_FRAME - ROOST_MIN_FRAME)
#define ROOST_MAX_ENCODED 258 /* ROOST_MAX_FRAME + one COBS code byte per 254 */

enum roost_type {
    ROOST_ANNOUNCE = 0x01,
    ROOST_READINGS = 0x02,
    ROOST_ACK = 0x03,
    ROOST_COMMAND = 0x04,
    ROOST_RESULT = 0x05,
};

/* What the deframer made of the bytes so far: nothing yet, a good frame, or why a frame was refused. */
enum roost_rx {
    ROOST_RX_NONE = 0,
    ROOST_RX_FRAME,
    ROOST_RX_CRC,
    ROOST_RX_TRUNCATED,
    ROOST_RX_OVERSIZE,
    ROOST_RX_VERSION,
};

/* ---- writing ---- */

typedef struct {
    roost_cobs_enc_t cobs;
    uint16_t crc;
    uint16_t payload_len;
    uint8_t too_long; /* the payload went over ROOST_MAX_PAYLOAD */
} roost_frame_writer_t;

void roost_frame_begin(roost_frame_writer_t *w, uint8_t *out, uint16_t cap, uint8_t type, uint8_t seq);
void roost_frame_put(roost_frame_writer_t *w, uint8_t byte);
void roost_frame_write(roost_frame_writer_t *w, const uint8_t *bytes, uint16_t n);
/* Append the CRC and the delimiter: the wire length, or 0 when the frame did not fit (payload or buffer). */
uint16_t roost_frame_end(roost_frame_writer_t *w);

/* A whole frame with a ready payload; the wire length or 0. */
uint16_t roost_frame_encode(uint8_t *out, uint16_t cap, uint8_t type, uint8_t seq, const uint8_t *payload,
                            uint16_t payload_len);

/* ---- reading ---- */

typedef struct {
    uint8_t type;
    uint8_t seq;
    const uint8_t *payload; /* inside the deframer's buffer: valid until the next byte is pushed */
    uint8_t payload_len;
    uint16_t crc; /* the frame's own CRC bytes, as sent */
} roost_frame_t;

typedef struct {
    uint8_t buf[ROOST_MAX_ENCODED];
    uint16_t len;
    uint8_t skipping; /* an over-long run was dropped: skip to the next 0x00 */
} roost_deframer_t;

void roost_deframer_reset(roost_deframer_t *d);
/* Take one byte from the line. ROOST_RX_FRAME fills *frame; an error value names the counter. */
uint8_t roost_deframer_push(roost_deframer_t *d, uint8_t byte, roost_frame_t *frame);
/* Check `len` COBS-encoded bytes (no delimiter, decoded in place). */
uint8_t roost_frame_decode(uint8_t *buf, uint16_t len, roost_frame_t *frame);

#endif
