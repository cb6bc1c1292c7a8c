/*
 * bridge-test: a tiny ATmega328P program that exercises roost-simavr's bridge.
 *
 * At boot it prints "GREETING mcusr=0xNN" (the reset cause it found) on the UART (115200 baud).
 * It echoes every byte it receives, and acts on complete lines:
 *   "led 1" / "led 0"  drive D13 (PB5)
 *   "adc N"            answer "adc N VALUE" (channel N against AVCC, 10 bits)
 *   "temp"             answer "temp VALUE" (the internal temperature channel against 1.1 V)
 *   "pin"              answer "pin D2 LEVEL" (PD2, pull-up on)
 *   "reboot"           restart through the watchdog
 */
#include <avr/io.h>
#include <avr/wdt.h>
#include <stdio.h>
#include <string.h>

#ifndef GREETING
#define GREETING "bridge-test"
#endif

static uint8_t boot_mcusr __attribute__((section(".noinit")));

/* Runs before main: keep the reset cause, and stop a watchdog left running by a watchdog reset. */
void early(void) __attribute__((naked, used, section(".init3")));
void early(void)
{
	boot_mcusr = MCUSR;
	MCUSR = 0;
	wdt_disable();
}

static void put(uint8_t c)
{
	while (!(UCSR0A & _BV(UDRE0)))
		;
	UDR0 = c;
}

static void puts_uart(const char *s)
{
	while (*s)
		put((uint8_t)*s++);
}

static uint16_t adc_read(uint8_t admux)
{
	ADMUX = admux;
	ADCSRA = _BV(ADEN) | _BV(ADSC) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);
	while (ADCSRA & _BV(ADSC))
		;
	return ADC;
}

static void act(const char *line)
{
	char out[40];
	if (strcmp(line, "led 1") == 0) {
		PORTB |= _BV(PB5);
	} else if (strcmp(line, "led 0") == 0) {
		PORTB &= (uint8_t)~_BV(PB5);
	} else if (strncmp(line, "adc ", 4) == 0 && line[4] >= '0' && line[4] <= '7' && line[5] == '\0') {
		uint8_t ch = (uint8_t)(line[4] - '0');
		snprintf(out, sizeof out, "adc %u %u\n", ch, adc_read(_BV(REFS0) | ch));
		puts_uart(out);
	} else if (strcmp(line, "temp") == 0) {
		snprintf(out, sizeof out, "temp %u\n", adc_read(_BV(REFS1) | _BV(REFS0) | 8));
		puts_uart(out);
	} else if (strcmp(line, "pin") == 0) {
		snprintf(out, sizeof out, "pin D2 %u\n", (PIND & _BV(PD2)) ? 1u : 0u);
		puts_uart(out);
	} else if (strcmp(line, "reboot") == 0) {
		wdt_enable(WDTO_15MS);
		for (;;)
			;
	}
}

int main(void)
{
	char line[32];
	uint8_t len = 0;
	char hello[48];

	DDRB |= _BV(PB5);
	PORTD |= _BV(PD2); /* pull-up on D2 */
	UBRR0 = 16;        /* 115200 baud at 16 MHz with U2X (as optiboot) */
	UCSR0A = _BV(U2X0);
	UCSR0B = _BV(RXEN0) | _BV(TXEN0);
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
	snprintf(hello, sizeof hello, "%s mcusr=0x%02x\n", GREETING, boot_mcusr);
	puts_uart(hello);
	for (;;) {
		while (!(UCSR0A & _BV(RXC0)))
			;
		uint8_t c = UDR0;
		put(c);
		if (c == '\n' || c == '\r') {
			line[len] = '\0';
			if (len)
				act(line);
			len = 0;
		} else if (len + 1 < (uint8_t)sizeof line) {
			line[len++] = (char)c;
		}
	}
}
