#include "gpio.h"

#include <avr/io.h>

#include "../node/node.h"
#include "../proto/message.h"

#if ROOST_OUTPUTS != 3
#error "gpio.c drives three outputs: D13, D7 and D6 (PWM)"
#endif

void gpio_init(void)
{
    DDRD &= (uint8_t)~(1 << PD2); /* D2 in */
    PORTD |= (1 << PD2);          /* with its pull-up: open is 1, a contact to GND is 0 */
    DDRB |= (1 << PB5);           /* D13 (the LED) out, low */
    PORTB &= (uint8_t)~(1 << PB5);
    DDRD |= (1 << PD7) | (1 << PD6); /* D7, D6 out, low */
    PORTD &= (uint8_t)~((1 << PD7) | (1 << PD6));
    TCCR0A = (1 << WGM01) | (1 << WGM00); /* Timer0 fast PWM; OC0A (D6) connected when a value needs it */
    TCCR0B = (1 << CS01) | (1 << CS00);   /* clk/64: 976 Hz at 16 MHz */
}

uint8_t gpio_input(void)
{
    return (PIND & (1 << PD2)) ? 1 : 0;
}

static void pwm_d6(uint8_t value)
{
    if (value == 0 || value == 255) { /* fully off or on: the pin itself, no glitch of the PWM */
        TCCR0A &= (uint8_t)~(1 << COM0A1);
        if (value) {
            PORTD |= (1 << PD6);
        } else {
            PORTD &= (uint8_t)~(1 << PD6);
        }
        return;
    }
    OCR0A = value;
    TCCR0A |= (1 << COM0A1);
}

uint8_t gpio_set_output(uint8_t output, int16_t value)
{
    if (output == 2) {
        if (value < 0 || value > 255) {
            return ROOST_RESULT_BAD_ARGUMENT;
        }
        pwm_d6((uint8_t)value);
        return ROOST_RESULT_DONE;
    }
    if (output > 2 || (value != 0 && value != 1)) {
        return ROOST_RESULT_BAD_ARGUMENT; /* a relay or LED is 0 or 1 */
    }
    volatile uint8_t *port = output == 0 ? &PORTB : &PORTD;
    uint8_t bit = output == 0 ? (1 << PB5) : (1 << PD7);
    if (value) {
        *port |= bit;
    } else {
        *port &= (uint8_t)~bit;
    }
    return ROOST_RESULT_DONE;
}
