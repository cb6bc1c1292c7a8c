/* CRC-16/XMODEM in plain C for the host build: the loop avr-libc documents for _crc_xmodem_update. */
#include "../src/proto/crc16.h"

uint16_t roost_crc16_update(uint16_t crc, uint8_t byte)
{
    crc ^= (uint16_t)((uint16_t)byte << 8);
    for (uint8_t i = 0; i < 8; i++) {
        crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}
