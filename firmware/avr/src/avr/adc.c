#include "adc.h"

#include <avr/io.h>

#define REF_AVCC (1 << REFS0)
#define REF_1V1 ((1 << REFS1) | (1 << REFS0))
#define TEMP_CHANNEL 8

static uint16_t convert(uint8_t admux)
{
    ADMUX = admux;
    ADCSRA |= (1 << ADSC);
    while (ADCSRA & (1 << ADSC)) {
    }
    return ADC; /* ADCL then ADCH */
}

void adc_init(void)
{
    ADCSRA = (1 << ADEN) | (1 << ADPS2) | (1 << ADPS1) | (1 << ADPS0); /* 16 MHz / 128 = 125 kHz */
    DIDR0 = 0x3F; /* A0..A5 analog only: no digital input buffer */
}

uint16_t adc_millivolts(uint8_t channel)
{
    convert(REF_AVCC | channel); /* the first conversion after switching can be off: throw it away */
    uint32_t raw = convert(REF_AVCC | channel);
    return (uint16_t)((raw * ROOST_VREF_MV + 512UL) / 1024UL);
}

int16_t adc_temperature_q(void)
{
    convert(REF_1V1 | TEMP_CHANNEL); /* the reference needs time to settle after a switch */
    convert(REF_1V1 | TEMP_CHANNEL);
    int32_t raw = convert(REF_1V1 | TEMP_CHANNEL);
    int32_t num = (raw * 100L - ROOST_TEMP_OFFSET_X100) * 4L;
    /* round to the nearest quarter degree, either sign */
    num += (num >= 0 ? ROOST_TEMP_GAIN_X100 : -ROOST_TEMP_GAIN_X100) / 2;
    return (int16_t)(num / ROOST_TEMP_GAIN_X100);
}
