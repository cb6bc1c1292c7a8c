#include "clock.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#if F_CPU != 16000000UL && F_CPU != 8000000UL
#error "clock.c sets Timer2 for 16 MHz or 8 MHz"
#endif

static volatile uint32_t ms;

ISR(TIMER2_COMPA_vect)
{
    ms++;
}

void clock_init(void)
{
    TCCR2A = (1 << WGM21); /* CTC */
#if F_CPU == 16000000UL
    TCCR2B = (1 << CS22); /* clk/64: 250 kHz */
#else
    TCCR2B = (1 << CS21) | (1 << CS20); /* clk/32: 250 kHz */
#endif
    OCR2A = 249; /* 250 counts: 1 ms */
    TIMSK2 = (1 << OCIE2A);
}

uint32_t clock_millis(void)
{
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        now = ms;
    }
    return now;
}
