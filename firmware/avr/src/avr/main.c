/* Roost sensor node for the ATmega328P (Arduino Uno/Nano): the board's side of src/node/hal.h and the loop.
 *
 * Samples A0..A(ROOST_ADC_CHANNELS-1), D2 and the chip's temperature every interval; drives D13, D7 and
 * D6 (PWM) on ACTUATE; speaks Roost serial protocol v1 on USART0 (docs/protocols/serial.md).
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "../node/hal.h"
#include "../node/node.h"
#include "adc.h"
#include "clock.h"
#include "gpio.h"
#include "settings.h"
#include "uart.h"

#ifndef ROOST_FIRMWARE_VERSION
#define ROOST_FIRMWARE_VERSION "dev"
#endif

static settings_t settings;

/* Not cleared at start-up: what a watchdog reset must not forget. */
node_kept_command_t node_kept_command __attribute__((section(".noinit")));
static uint8_t reset_cause __attribute__((section(".noinit")));
static uint8_t rebooting __attribute__((section(".noinit")));

/* After a watchdog reset the watchdog stays on: turn it off before anything else runs (no bootloader
 * may have done it). Note why the chip started. */
void early_watchdog_off(void) __attribute__((naked, used, section(".init3")));
void early_watchdog_off(void)
{
    reset_cause = MCUSR;
    MCUSR = 0;
    wdt_disable();
}

uint32_t hal_millis(void)
{
    return clock_millis();
}

int16_t hal_recv(void)
{
    return uart_getc();
}

void hal_send(const uint8_t *bytes, uint16_t n)
{
    uart_write(bytes, n);
}

void hal_sample(roost_sample_t *sample)
{
#if ROOST_ADC_CHANNELS > 0
    for (uint8_t ch = 0; ch < ROOST_ADC_CHANNELS; ch++) {
        sample->adc_mv[ch] = adc_millivolts(ch);
    }
#endif
    sample->digital = gpio_input();
    sample->temp_q = adc_temperature_q();
}

uint8_t hal_actuate(uint8_t output, int16_t value)
{
    return gpio_set_output(output, value);
}

void hal_save_interval(uint16_t seconds)
{
    settings.interval_s = seconds;
    settings_save(&settings);
}

void hal_reboot(void)
{
    uart_flush(); /* the RESULT leaves first */
    cli();
    rebooting = NODE_KEPT_MAGIC;
    wdt_enable(WDTO_15MS);
    for (;;) {
    }
}

int main(void)
{
    settings_load(&settings);
    gpio_init();
    adc_init();
    clock_init();
    uart_init();
    sei();
    /* The restart a REBOOT asked for: the mark set just before the watchdog fired, and no power-on or
     * brown-out since (a bootloader may have cleared MCUSR already: then the mark alone tells). */
    uint8_t by_reboot = rebooting == NODE_KEPT_MAGIC && !(reset_cause & ((1 << PORF) | (1 << BORF)));
    rebooting = 0;
    node_init(settings.id, ROOST_FIRMWARE_VERSION, settings.interval_s, by_reboot);
    set_sleep_mode(SLEEP_MODE_IDLE);
    for (;;) {
        node_poll();
        /* sleep until the next interrupt (a byte, the 1 ms tick) unless a byte is already waiting */
        cli();
        if (!uart_rx_waiting()) {
            sleep_enable();
            sei();
            sleep_cpu();
            sleep_disable();
        }
        sei();
    }
}
