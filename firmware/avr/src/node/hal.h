/* What the node's logic needs from the board: a clock, the line, the inputs, the outputs, the settings.
 * src/avr/ implements it for the ATmega328P; the logic in node.c includes no AVR header.
 */
#ifndef ROOST_HAL_H
#define ROOST_HAL_H

#include <stdint.h>

#include "../proto/readings.h"

uint32_t hal_millis(void);
/* The next byte received from the gateway, or -1 when none is waiting. */
int16_t hal_recv(void);
void hal_send(const uint8_t *bytes, uint16_t n);
/* Read every input into `sample` (all but taken_ms). */
void hal_sample(roost_sample_t *sample);
/* Set output `output` to `value`: a roost_result_status (BAD_ARGUMENT for an output or value it lacks). */
uint8_t hal_actuate(uint8_t output, int16_t value);
/* Keep the reporting interval across restarts. */
void hal_save_interval(uint16_t seconds);
/* Restart the node once what was sent has left; does not return. */
void hal_reboot(void);

#endif
