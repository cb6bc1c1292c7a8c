#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>

static volatile uint8_t ring[UART_RX_RING];
static volatile uint8_t head; /* written by the interrupt */
static volatile uint8_t tail; /* written by the main loop */

ISR(USART_RX_vect)
{
    uint8_t status = UCSR0A;
    uint8_t byte = UDR0;
    uint8_t next = (uint8_t)((head + 1) & (UART_RX_RING - 1));
    if (status & (1 << FE0)) {
        return; /* a framing error (a break, a baud mismatch): not a byte */
    }
    if (next != tail) { /* full: the byte is lost, the protocol's CRC and resend cope */
        ring[head] = byte;
        head = next;
    }
}

void uart_init(void)
{
    /* double speed: 115200 at 16 MHz is 2.1 % off instead of 3.5 % */
    uint16_t ubrr = (uint16_t)((F_CPU + ROOST_BAUD * 4UL) / (ROOST_BAUD * 8UL) - 1UL);
    UBRR0H = (uint8_t)(ubrr >> 8);
    UBRR0L = (uint8_t)ubrr;
    UCSR0A = (1 << U2X0);
    UCSR0C = (1 << UCSZ01) | (1 << UCSZ00); /* 8N1 */
    UCSR0B = (1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0);
}

int16_t uart_getc(void)
{
    uint8_t t = tail;
    if (t == head) {
        return -1;
    }
    uint8_t byte = ring[t];
    tail = (uint8_t)((t + 1) & (UART_RX_RING - 1));
    return byte;
}

uint8_t uart_rx_waiting(void)
{
    return head != tail;
}

void uart_write(const uint8_t *bytes, uint16_t n)
{
    while (n--) {
        while (!(UCSR0A & (1 << UDRE0))) {
        }
        UCSR0A = (1 << U2X0) | (1 << TXC0); /* clear TXC: it then tells when this byte has left */
        UDR0 = *bytes++;
    }
}

void uart_flush(void)
{
    while (!(UCSR0A & (1 << UDRE0))) {
    }
    while (!(UCSR0A & (1 << TXC0))) {
    }
}
