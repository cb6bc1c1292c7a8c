#include "message.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint8_t parse_command(const roost_frame_t *frame, roost_msg_t *msg)
{
    const uint8_t *p = frame->payload;
    uint8_t n = frame->payload_len;
    if (n < 1) {
        return ROOST_MSG_MALFORMED; /* no command code */
    }
    msg->code = p[0];
    if (msg->code == ROOST_CMD_SET_INTERVAL) {
        if (n < 3) {
            return ROOST_MSG_MALFORMED; /* SET_INTERVAL needs 2 bytes of seconds */
        }
        msg->seconds = be16(p + 1);
    } else if (msg->code == ROOST_CMD_ACTUATE) {
        if (n < 4) {
            return ROOST_MSG_MALFORMED; /* ACTUATE needs an output byte and a 2-byte value */
        }
        msg->output = p[1];
        msg->value = (int16_t)be16(p + 2);
    }
    return ROOST_MSG_OK;
}

uint8_t roost_msg_parse(const roost_frame_t *frame, roost_msg_t *msg)
{
    msg->type = frame->type;
    msg->status = 0;
    msg->code = 0;
    msg->seconds = 0;
    msg->output = 0;
    msg->value = 0;
    switch (frame->type) {
    case ROOST_ACK:
        if (frame->payload_len < 1 || frame->payload[0] > ROOST_ACK_BUSY) {
            return ROOST_MSG_MALFORMED; /* no status byte, or a status v1 does not define */
        }
        msg->status = frame->payload[0];
        return ROOST_MSG_OK;
    case ROOST_COMMAND:
        return parse_command(frame, msg);
    case ROOST_ANNOUNCE:
    case ROOST_READINGS:
    case ROOST_RESULT:
        return ROOST_MSG_UNEXPECTED;
    default:
        return ROOST_MSG_UNKNOWN_TYPE;
    }
}

static void put_text(roost_frame_writer_t *w, const char *s, uint8_t limit)
{
    uint8_t n = 0;
    while (s[n] != '\0' && n < limit) {
        n++;
    }
    roost_frame_put(w, n);
    roost_frame_write(w, (const uint8_t *)s, n);
}

uint16_t roost_announce_encode(uint8_t *out, uint16_t cap, uint8_t seq, const char *node_id, const char *firmware,
                               uint16_t capabilities, uint8_t outputs, uint16_t interval_s)
{
    roost_frame_writer_t w;
    roost_frame_begin(&w, out, cap, ROOST_ANNOUNCE, seq);
    put_text(&w, node_id, ROOST_MAX_NODE_ID);
    put_text(&w, firmware, ROOST_MAX_FIRMWARE);
    roost_frame_put(&w, (uint8_t)(capabilities >> 8));
    roost_frame_put(&w, (uint8_t)capabilities);
    roost_frame_put(&w, outputs);
    roost_frame_put(&w, (uint8_t)(interval_s >> 8));
    roost_frame_put(&w, (uint8_t)interval_s);
    return roost_frame_end(&w);
}

uint16_t roost_result_encode(uint8_t *out, uint16_t cap, uint8_t seq, uint8_t status)
{
    return roost_frame_encode(out, cap, ROOST_RESULT, seq, &status, 1);
}
