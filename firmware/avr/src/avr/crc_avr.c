/* CRC-16/XMODEM on the AVR: avr-libc's _crc_xmodem_update, a few cycles a byte. */
#include <util/crc16.h>

#include "../proto/crc16.h"

uint16_t roost_crc16_update(uint16_t crc, uint8_t byte)
{
    return _crc_xmodem_update(crc, byte);
}
