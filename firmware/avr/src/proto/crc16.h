/* CRC-16/XMODEM (poly 0x1021, init 0, no reflection, no final XOR), as docs/protocols/serial.md says.
 *
 * One byte at a time. The AVR build implements it with avr-libc's _crc_xmodem_update (src/avr/crc_avr.c),
 * the host build with the same loop in plain C (host/crc_host.c), so this part stays free of AVR headers.
 * "123456789" gives 0x31C3; over a frame together with its (big-endian) CRC the result is 0.
 */
#ifndef ROOST_CRC16_H
#define ROOST_CRC16_H

#include <stdint.h>

uint16_t roost_crc16_update(uint16_t crc, uint8_t byte);

#endif
