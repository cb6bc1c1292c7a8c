#include "readings.h"

#include "cbor.h"
#include "frame.h"

/* SenML's integer labels (RFC 8428 section 6). */
#define L_NAME 0
#define L_UNIT 1
#define L_VALUE 2
#define L_BOOL 4
#define L_BASE_TIME (-3)

uint16_t roost_readings_encode(uint8_t *out, uint16_t cap, uint8_t seq, const roost_sample_t *sample,
                               uint32_t now_ms)
{
    uint32_t age_s = (uint32_t)(now_ms - sample->taken_ms + 500u) / 1000u;
    uint8_t first = 1;
    roost_frame_writer_t w;
    roost_frame_begin(&w, out, cap, ROOST_READINGS, seq);
    roost_cbor_array(&w, ROOST_ADC_CHANNELS + 2);
#if ROOST_ADC_CHANNELS > 0
    for (uint8_t ch = 0; ch < ROOST_ADC_CHANNELS; ch++) {
        uint8_t name[2] = {'a', (uint8_t)('0' + ch)};
        uint8_t with_time = first && age_s > 0;
        roost_cbor_map(&w, with_time ? 4 : 3);
        roost_cbor_int(&w, L_NAME);
        roost_cbor_text_n(&w, name, 2);
        roost_cbor_int(&w, L_UNIT);
        roost_cbor_text(&w, "mV");
        roost_cbor_int(&w, L_VALUE);
        roost_cbor_int(&w, sample->adc_mv[ch]);
        if (with_time) {
            roost_cbor_int(&w, L_BASE_TIME);
            roost_cbor_int(&w, -(int32_t)age_s);
        }
        first = 0;
    }
#endif
    uint8_t with_time = first && age_s > 0;
    roost_cbor_map(&w, with_time ? 3 : 2);
    roost_cbor_int(&w, L_NAME);
    roost_cbor_text(&w, "d2");
    roost_cbor_int(&w, L_BOOL);
    roost_cbor_bool(&w, sample->digital);
    if (with_time) {
        roost_cbor_int(&w, L_BASE_TIME);
        roost_cbor_int(&w, -(int32_t)age_s);
    }
    roost_cbor_map(&w, 3);
    roost_cbor_int(&w, L_NAME);
    roost_cbor_text(&w, "temp");
    roost_cbor_int(&w, L_UNIT);
    roost_cbor_text(&w, "Cel");
    roost_cbor_int(&w, L_VALUE);
    roost_cbor_float32(&w, (float)sample->temp_q / 4.0f);
    return roost_frame_end(&w);
}
