/* The ADC: A0.. against AVcc in millivolts, and the chip's own temperature sensor (channel 8, 1.1 V). */
#ifndef ROOST_ADC_H
#define ROOST_ADC_H

#include <stdint.h>

#ifndef ROOST_VREF_MV
#define ROOST_VREF_MV 5000UL /* AVcc; measure a board's 5 V rail and set it for better accuracy */
#endif
/* Internal sensor: degrees = (raw - OFFSET) / GAIN, both times 100 (datasheet typicals; calibrate per chip). */
#ifndef ROOST_TEMP_OFFSET_X100
#define ROOST_TEMP_OFFSET_X100 32431L
#endif
#ifndef ROOST_TEMP_GAIN_X100
#define ROOST_TEMP_GAIN_X100 122L
#endif

void adc_init(void);
uint16_t adc_millivolts(uint8_t channel);
/* The chip's temperature in quarter degrees Celsius. */
int16_t adc_temperature_q(void);

#endif
