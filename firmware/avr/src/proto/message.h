/* The messages of the Roost serial protocol v1 as a node sees them (docs/protocols/serial.md, "Messages").
 *
 * A node parses what a gateway sends (ACK, COMMAND) and writes what a node sends (ANNOUNCE, RESULT;
 * READINGS are in readings.h). Fixed layouts, big-endian; bytes after the known fields are ignored.
 */
#ifndef ROOST_MESSAGE_H
#define ROOST_MESSAGE_H

#include <stdint.h>

#include "frame.h"

#define ROOST_MAX_NODE_ID 32
#define ROOST_MAX_FIRMWARE 16

enum roost_ack_status {
    ROOST_ACK_OK = 0,
    ROOST_ACK_MALFORMED = 1,
    ROOST_ACK_ANNOUNCE_FIRST = 2,
    ROOST_ACK_NOT_PAIRED = 3,
    ROOST_ACK_BUSY = 4,
};

enum roost_command_code {
    ROOST_CMD_SET_INTERVAL = 0x01,
    ROOST_CMD_ACTUATE = 0x02,
    ROOST_CMD_REBOOT = 0x03,
    ROOST_CMD_IDENTIFY = 0x04,
};

enum roost_result_status {
    ROOST_RESULT_DONE = 0,
    ROOST_RESULT_UNKNOWN_COMMAND = 1,
    ROOST_RESULT_BAD_ARGUMENT = 2,
    ROOST_RESULT_FAILED = 3,
};

#define ROOST_CAP_SET_INTERVAL 0x0001
#define ROOST_CAP_ACTUATE 0x0002
#define ROOST_CAP_REBOOT 0x0004

/* Why a good frame's message cannot be used (the counters of the spec). */
enum roost_msg_error {
    ROOST_MSG_OK = 0,
    ROOST_MSG_UNKNOWN_TYPE,
    ROOST_MSG_MALFORMED,
    ROOST_MSG_UNEXPECTED, /* a message only a node sends */
};

typedef struct {
    uint8_t type;    /* ROOST_ACK or ROOST_COMMAND */
    uint8_t status;  /* ACK: its status */
    uint8_t code;    /* COMMAND: its code (an undefined code is kept: the node answers UNKNOWN_COMMAND) */
    uint16_t seconds; /* SET_INTERVAL */
    uint8_t output;  /* ACTUATE */
    int16_t value;   /* ACTUATE */
} roost_msg_t;

/* The message a checked frame carries, for a node: ROOST_MSG_OK or why not. */
uint8_t roost_msg_parse(const roost_frame_t *frame, roost_msg_t *msg);

/* ANNOUNCE: node id (1-32 chars), firmware (0-16), capabilities, outputs, interval; wire length or 0. */
uint16_t roost_announce_encode(uint8_t *out, uint16_t cap, uint8_t seq, const char *node_id, const char *firmware,
                               uint16_t capabilities, uint8_t outputs, uint16_t interval_s);

/* RESULT of the COMMAND with sequence number `seq`; wire length (8 bytes at most) or 0. */
uint16_t roost_result_encode(uint8_t *out, uint16_t cap, uint8_t seq, uint8_t status);

#endif
