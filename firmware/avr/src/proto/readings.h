/* A node's sample and the READINGS frame that carries it: compact SenML in CBOR, integer labels, metric
 * names only (the announced node id names the sensor), the time relative to sending (bt <= 0).
 *
 *   [{0: "a0", 1: "mV", 2: 1234, -3: -3}, {0: "a1", 1: "mV", 2: 0}, ..., {0: "d2", 4: true},
 *    {0: "temp", 1: "Cel", 2: 24.25 (float32)}]
 */
#ifndef ROOST_READINGS_H
#define ROOST_READINGS_H

#include <stdint.h>

#ifndef ROOST_ADC_CHANNELS
#define ROOST_ADC_CHANNELS 4 /* A0..A3 (A4/A5 are the I2C pins of an Uno) */
#endif
#if ROOST_ADC_CHANNELS < 0 || ROOST_ADC_CHANNELS > 8
#error "ROOST_ADC_CHANNELS is 0 to 8 (an ATmega328P has ADC0..ADC7; the DIP package only ADC0..ADC5)"
#endif

typedef struct {
    uint32_t taken_ms; /* the node's clock when sampled */
#if ROOST_ADC_CHANNELS > 0
    uint16_t adc_mv[ROOST_ADC_CHANNELS]; /* A0.. in millivolts */
#endif
    int16_t temp_q;  /* the chip's own temperature in quarter degrees Celsius */
    uint8_t digital; /* D2: 0 or 1 */
} roost_sample_t;

/* The READINGS frame of `sample` sent at `now_ms`; wire length, or 0 when it does not fit `cap`. */
uint16_t roost_readings_encode(uint8_t *out, uint16_t cap, uint8_t seq, const roost_sample_t *sample,
                               uint32_t now_ms);

#endif
