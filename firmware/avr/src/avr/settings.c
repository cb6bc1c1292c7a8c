#include "settings.h"

#include <avr/eeprom.h>
#include <string.h>

#include "../proto/crc16.h"

#define SETTINGS_SIZE 40
#define MAGIC0 'R'
#define MAGIC1 'N'
#define LAYOUT 1

static uint16_t crc_of(const uint8_t *b, uint8_t n)
{
    uint16_t crc = 0;
    while (n--) {
        crc = roost_crc16_update(crc, *b++);
    }
    return crc;
}

static uint8_t id_char_ok(char c, uint8_t first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return !first && (c == '-' || c == ':' || c == '.' || c == '/' || c == '_');
}

static uint8_t valid(const uint8_t *b)
{
    if (b[0] != MAGIC0 || b[1] != MAGIC1 || b[2] != LAYOUT || b[3] > 32) {
        return 0;
    }
    uint16_t stated = (uint16_t)((uint16_t)b[38] << 8 | b[39]);
    if (crc_of(b, 38) != stated || (b[36] == 0 && b[37] == 0)) {
        return 0;
    }
    for (uint8_t i = 0; i < b[3]; i++) {
        if (!id_char_ok((char)b[4 + i], i == 0)) {
            return 0;
        }
    }
    return 1;
}

void settings_load(settings_t *s)
{
    uint8_t b[SETTINGS_SIZE];
    eeprom_read_block(b, (const void *)0, SETTINGS_SIZE);
    uint8_t ok = valid(b);
    s->id_from_eeprom = ok && b[3] > 0;
    if (s->id_from_eeprom) {
        memcpy(s->id, b + 4, b[3]);
        s->id[b[3]] = '\0';
    } else {
        strncpy(s->id, ROOST_DEFAULT_ID, 32);
        s->id[32] = '\0';
    }
    s->interval_s = ok ? (uint16_t)((uint16_t)b[36] << 8 | b[37]) : ROOST_DEFAULT_INTERVAL;
}

void settings_save(const settings_t *s)
{
    uint8_t b[SETTINGS_SIZE];
    uint8_t n = s->id_from_eeprom ? (uint8_t)strlen(s->id) : 0; /* the built-in id stays a build setting */
    memset(b, 0, sizeof b);
    b[0] = MAGIC0;
    b[1] = MAGIC1;
    b[2] = LAYOUT;
    b[3] = n;
    memcpy(b + 4, s->id, n);
    b[36] = (uint8_t)(s->interval_s >> 8);
    b[37] = (uint8_t)s->interval_s;
    uint16_t crc = crc_of(b, 38);
    b[38] = (uint8_t)(crc >> 8);
    b[39] = (uint8_t)crc;
    eeprom_update_block(b, (void *)0, SETTINGS_SIZE); /* only the bytes that changed wear the EEPROM */
}
