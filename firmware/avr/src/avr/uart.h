/* USART0 (D0 RX, D1 TX), 8N1: interrupt-driven receive into a ring buffer, blocking send. */
#ifndef ROOST_UART_H
#define ROOST_UART_H

#include <stdint.h>

#ifndef ROOST_BAUD
#define ROOST_BAUD 115200UL
#endif
#define UART_RX_RING 128 /* a power of two */

void uart_init(void);
/* The next received byte, or -1. */
int16_t uart_getc(void);
uint8_t uart_rx_waiting(void);
void uart_write(const uint8_t *bytes, uint16_t n);
/* Wait until the last byte written has left the shift register. */
void uart_flush(void);

#endif
