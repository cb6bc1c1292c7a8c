/* The node's pins: D2 a digital input (pulled up), outputs 0 = D13 (the LED), 1 = D7, 2 = D6 (PWM). */
#ifndef ROOST_GPIO_H
#define ROOST_GPIO_H

#include <stdint.h>

void gpio_init(void);
uint8_t gpio_input(void);
/* A roost_result_status: DONE, or BAD_ARGUMENT for an output it lacks or a value out of its range. */
uint8_t gpio_set_output(uint8_t output, int16_t value);

#endif
