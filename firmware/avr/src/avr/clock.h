/* Milliseconds since boot: Timer2 in CTC mode at 1 kHz (Timer0 stays free for PWM on D5/D6). */
#ifndef ROOST_CLOCK_H
#define ROOST_CLOCK_H

#include <stdint.h>

void clock_init(void);
uint32_t clock_millis(void);

#endif
