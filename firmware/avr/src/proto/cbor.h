/* A small CBOR (RFC 8949) writer for SenML packs, streaming into a frame: heads in their shortest form,
 * integers, text, float32, booleans, arrays and maps of known length. Nothing is buffered.
 */
#ifndef ROOST_CBOR_H
#define ROOST_CBOR_H

#include <stdint.h>

#include "frame.h"

void roost_cbor_array(roost_frame_writer_t *w, uint8_t n);
void roost_cbor_map(roost_frame_writer_t *w, uint8_t n);
void roost_cbor_int(roost_frame_writer_t *w, int32_t v);
void roost_cbor_text(roost_frame_writer_t *w, const char *s);
void roost_cbor_text_n(roost_frame_writer_t *w, const uint8_t *s, uint8_t n);
void roost_cbor_float32(roost_frame_writer_t *w, float v);
void roost_cbor_bool(roost_frame_writer_t *w, uint8_t v);

#endif
