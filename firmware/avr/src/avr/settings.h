/* The node's settings in EEPROM (address 0): its id and reporting interval, with a magic and a CRC so
 * that a blank (0xFF) or damaged EEPROM gives the defaults. tools/eeprom_image.py writes the same layout.
 *
 *   offset 0  'R' 'N'        magic
 *          2  1              layout version
 *          3  n              id length (0-32; 0: the id built in, ROOST_DEFAULT_ID)
 *          4  id[32]         ASCII, a Roost sensor id
 *         36  interval       seconds, big-endian (1-65535)
 *         38  crc            CRC-16/XMODEM of bytes 0..37, big-endian
 */
#ifndef ROOST_SETTINGS_H
#define ROOST_SETTINGS_H

#include <stdint.h>

#ifndef ROOST_DEFAULT_ID
#define ROOST_DEFAULT_ID "avr-node"
#endif
#ifndef ROOST_DEFAULT_INTERVAL
#define ROOST_DEFAULT_INTERVAL 60
#endif

typedef struct {
    char id[33]; /* NUL-terminated */
    uint16_t interval_s;
    uint8_t id_from_eeprom; /* 0: the id built in (a blank or damaged EEPROM, or none written there) */
} settings_t;

void settings_load(settings_t *s);
void settings_save(const settings_t *s);

#endif
