/* The node's side of the Roost serial protocol v1 (docs/protocols/serial.md): announce, sample, send
 * READINGS one frame at a time until acknowledged, obey COMMANDs. Call node_poll() as often as possible.
 */
#ifndef ROOST_NODE_H
#define ROOST_NODE_H

#include <stdint.h>

#ifndef ROOST_OUTPUTS
#define ROOST_OUTPUTS 3 /* D13 (LED), D7 (relay), D6 (PWM) */
#endif
#ifndef ROOST_QUEUE
#define ROOST_QUEUE 8 /* samples waiting while one frame is in flight; the oldest goes when full */
#endif
#define ROOST_RETRANSMIT_MS 500u
#define ROOST_BUSY_BACKOFF_MS 5000u
#define ROOST_COMMAND_WINDOW_MS 10000u
#define ROOST_CAPABILITIES 0x0007 /* SET_INTERVAL | ACTUATE | REBOOT */

/* The last COMMAND acted on and its answer: the board keeps it across a watchdog reset (.noinit RAM on the
 * AVR), so a REBOOT whose RESULT was lost and which the gateway sends again is answered, not done twice. */
typedef struct {
    uint8_t magic; /* NODE_KEPT_MAGIC when the rest is valid */
    uint8_t seq;
    uint16_t crc;
    uint8_t status;
} node_kept_command_t;
#define NODE_KEPT_MAGIC 0xA5

extern node_kept_command_t node_kept_command;

/* `restarted_by_reboot`: this boot follows a REBOOT command (the kept command is valid from now). */
void node_init(const char *node_id, const char *firmware, uint16_t interval_s, uint8_t restarted_by_reboot);
void node_poll(void);

#endif
