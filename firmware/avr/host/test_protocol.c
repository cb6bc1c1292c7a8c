/* The node's protocol code, built natively, against the shared vectors (the JSON files in tests/vectors/roostserial,
 * flattened by tools/vectors_to_text.py) and a few properties of its own.
 *
 * For every vector: the deframer sees the wire bytes as the node would and gives the frame or the error the
 * vector names; the node's message parser accepts what a gateway sends (ACK, COMMAND) with the vector's
 * fields and rejects the rest with the right reason; what a node sends (ANNOUNCE, READINGS, RESULT) is
 * rebuilt by the node's encoders byte for byte. Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/proto/cbor.h"
#include "../src/proto/cobs.h"
#include "../src/proto/crc16.h"
#include "../src/proto/frame.h"
#include "../src/proto/message.h"
#include "../src/proto/readings.h"

#define MAX_WIRE 1024
#define MAX_LINE 4096

static int passed;
static int failed;
static const char *current = "-";

static void check(int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", current);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *rx_reason(uint8_t rx)
{
    static const char *names[] = {"none", "frame", "crc", "truncated", "oversize", "version"};
    return rx < sizeof names / sizeof names[0] ? names[rx] : "?";
}

static const char *msg_reason(uint8_t e)
{
    static const char *names[] = {"ok", "unknown-type", "malformed", "unexpected"};
    return e < sizeof names / sizeof names[0] ? names[e] : "?";
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) {
            break;
        }
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void dump(const char *what, const uint8_t *b, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, " %02x", b[i]);
    }
    fputc('\n', stderr);
}

static void same_bytes(const char *what, const uint8_t *got, size_t got_n, const uint8_t *want, size_t want_n)
{
    int ok = got_n == want_n && memcmp(got, want, want_n) == 0;
    check(ok, "%s differs from the vector's wire bytes", what);
    if (!ok) {
        dump("want", want, want_n);
        dump("got ", got, got_n);
    }
}

typedef struct {
    char name[128];
    uint8_t wire[MAX_WIRE];
    size_t wire_n;
    char stage[32];
    char reason[32];
    int has_frame;
    unsigned type, seq;
    uint8_t payload[256];
    size_t payload_n;
    char msg[512]; /* the announce/ack/result/command/pack/sample line, verbatim */
    char sample[256];
} vector_t;

/* Feed the wire to a fresh deframer byte by byte, as the node's loop does; exactly one event expected. */
static uint8_t deframe(const vector_t *v, roost_deframer_t *d, roost_frame_t *frame)
{
    uint8_t last = ROOST_RX_NONE;
    int events = 0;
    roost_deframer_reset(d);
    for (size_t i = 0; i < v->wire_n; i++) {
        uint8_t rx = roost_deframer_push(d, v->wire[i], frame);
        if (rx != ROOST_RX_NONE) {
            events++;
            last = rx;
        }
    }
    check(events == 1, "the wire gives %d frames or errors, not 1", events);
    return last;
}

static void check_gateway_message(const vector_t *v, const roost_msg_t *m)
{
    unsigned a = 0, b = 0;
    char word[32] = "";
    if (sscanf(v->msg, "ack %u", &a) == 1) {
        check(m->type == ROOST_ACK && m->status == a, "ACK status %u, the vector says %u", m->status, a);
        return;
    }
    if (sscanf(v->msg, "command %31s", word) != 1) {
        check(0, "a gateway's message the test does not know: %s", v->msg);
        return;
    }
    check(m->type == ROOST_COMMAND, "not a COMMAND");
    if (strcmp(word, "set-interval") == 0 && sscanf(v->msg, "command set-interval %u", &a) == 1) {
        check(m->code == ROOST_CMD_SET_INTERVAL && m->seconds == a, "SET_INTERVAL %u, the vector says %u",
              m->seconds, a);
    } else if (strcmp(word, "actuate") == 0) {
        int value = 0;
        sscanf(v->msg, "command actuate %u %d", &b, &value);
        check(m->code == ROOST_CMD_ACTUATE && m->output == b && m->value == value,
              "ACTUATE %u = %d, the vector says %u = %d", m->output, m->value, b, value);
    } else if (strcmp(word, "reboot") == 0) {
        check(m->code == ROOST_CMD_REBOOT, "code 0x%02x is not REBOOT", m->code);
    } else if (strcmp(word, "identify") == 0) {
        check(m->code == ROOST_CMD_IDENTIFY, "code 0x%02x is not IDENTIFY", m->code);
    } else {
        check(0, "a command the test does not know: %s", v->msg);
    }
}

/* Replay a pack's CBOR items through the node's CBOR writer, in a frame with the vector's seq. */
static size_t replay_pack(const vector_t *v, uint8_t *out, size_t cap)
{
    roost_frame_writer_t w;
    char copy[sizeof v->msg];
    strcpy(copy, v->msg);
    roost_frame_begin(&w, out, (uint16_t)cap, ROOST_READINGS, (uint8_t)v->seq);
    for (char *tok = strtok(copy + 5, " "); tok != NULL; tok = strtok(NULL, " ")) {
        uint8_t bytes[256];
        size_t n;
        switch (tok[0]) {
        case 'A':
            roost_cbor_array(&w, (uint8_t)atoi(tok + 1));
            break;
        case 'M':
            roost_cbor_map(&w, (uint8_t)atoi(tok + 1));
            break;
        case 'I':
            roost_cbor_int(&w, (int32_t)atol(tok + 1));
            break;
        case 'S':
            n = unhex(tok + 1, bytes, sizeof bytes);
            roost_cbor_text_n(&w, bytes, (uint8_t)n);
            break;
        case 'T':
            roost_cbor_bool(&w, 1);
            break;
        case 'F':
            if (strcmp(tok, "F0") == 0) {
                roost_cbor_bool(&w, 0);
            } else {
                uint32_t bits = (uint32_t)strtoul(tok + 1, NULL, 16);
                float f;
                memcpy(&f, &bits, sizeof f);
                roost_cbor_float32(&w, f);
            }
            break;
        default:
            check(0, "unknown pack token %s", tok);
        }
    }
    return roost_frame_end(&w);
}

/* The node's own READINGS builder on the sample the vector describes. */
static size_t build_sample(const vector_t *v, uint8_t *out, size_t cap)
{
    roost_sample_t s;
    unsigned mv[4], d2, age;
    double temp;
    if (sscanf(v->sample, "sample %u %u %u %u %u %lf %u", &mv[0], &mv[1], &mv[2], &mv[3], &d2, &temp, &age) != 7) {
        check(0, "bad sample line: %s", v->sample);
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        s.adc_mv[i] = (uint16_t)mv[i];
    }
    s.digital = (uint8_t)d2;
    s.temp_q = (int16_t)(temp * 4.0);
    s.taken_ms = 1000000u;
    return roost_readings_encode(out, (uint16_t)cap, (uint8_t)v->seq, &s, 1000000u + age * 1000u);
}

static void check_node_message(const vector_t *v)
{
    uint8_t out[300];
    size_t n = 0;
    char id[64], fw[64];
    unsigned caps, outputs, interval, status;
    if (sscanf(v->msg, "announce %63s %63s %u %u %u", id, fw, &caps, &outputs, &interval) == 5) {
        n = roost_announce_encode(out, sizeof out, (uint8_t)v->seq, id, strcmp(fw, "-") == 0 ? "" : fw,
                                  (uint16_t)caps, (uint8_t)outputs, (uint16_t)interval);
        same_bytes("the node's ANNOUNCE", out, n, v->wire, v->wire_n);
    } else if (sscanf(v->msg, "result %u", &status) == 1) {
        n = roost_result_encode(out, sizeof out, (uint8_t)v->seq, (uint8_t)status);
        same_bytes("the node's RESULT", out, n, v->wire, v->wire_n);
    } else if (strncmp(v->msg, "pack ", 5) == 0) {
        n = replay_pack(v, out, sizeof out);
        same_bytes("the node's CBOR writer's READINGS", out, n, v->wire, v->wire_n);
    }
    if (v->sample[0]) {
        n = build_sample(v, out, sizeof out);
        same_bytes("the node's READINGS of the vector's sample", out, n, v->wire, v->wire_n);
    }
}

static void run_vector(const vector_t *v)
{
    roost_deframer_t d;
    roost_frame_t frame;
    current = v->name;
    uint8_t rx = deframe(v, &d, &frame);
    if (strcmp(v->stage, "frame") == 0) {
        check(strcmp(rx_reason(rx), v->reason) == 0, "refused as %s, the vector says %s", rx_reason(rx), v->reason);
        return;
    }
    check(rx == ROOST_RX_FRAME, "refused as %s, the vector says it is a good frame", rx_reason(rx));
    if (rx != ROOST_RX_FRAME) {
        return;
    }
    if (v->has_frame) {
        check(frame.type == v->type && frame.seq == v->seq && frame.payload_len == v->payload_n &&
                  memcmp(frame.payload, v->payload, v->payload_n) == 0,
              "frame type %u seq %u payload of %u bytes, not the vector's", frame.type, frame.seq,
              frame.payload_len);
        /* the generic frame writer gives the same wire for the same type, seq and payload */
        uint8_t out[300];
        size_t n = roost_frame_encode(out, sizeof out, (uint8_t)v->type, (uint8_t)v->seq, v->payload,
                                      (uint16_t)v->payload_n);
        same_bytes("the frame writer's output", out, n, v->wire, v->wire_n);
    }
    roost_msg_t m;
    uint8_t e = roost_msg_parse(&frame, &m);
    int from_node = frame.type == ROOST_ANNOUNCE || frame.type == ROOST_READINGS || frame.type == ROOST_RESULT;
    if (from_node) {
        /* a node never takes a node's message, whatever is wrong inside it */
        check(e == ROOST_MSG_UNEXPECTED, "a node's message taken as %s, not unexpected", msg_reason(e));
        if (strcmp(v->stage, "") == 0) {
            check_node_message(v);
        }
        return;
    }
    if (strcmp(v->stage, "message") == 0) {
        check(strcmp(msg_reason(e), v->reason) == 0, "refused as %s, the vector says %s", msg_reason(e), v->reason);
        return;
    }
    check(e == ROOST_MSG_OK, "refused as %s", msg_reason(e));
    if (e == ROOST_MSG_OK) {
        check_gateway_message(v, &m);
    }
}

static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    static char line[MAX_LINE];
    static vector_t v;
    int count = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char payload[600];
        if (strncmp(line, "vector ", 7) == 0) {
            memset(&v, 0, sizeof v);
            copy_text(v.name, sizeof v.name, line + 7);
        } else if (strncmp(line, "wire ", 5) == 0) {
            v.wire_n = unhex(line + 5, v.wire, sizeof v.wire);
        } else if (strncmp(line, "expect ", 7) == 0) {
            if (strcmp(line + 7, "good") != 0) {
                sscanf(line + 7, "%31s %31s", v.stage, v.reason);
            }
        } else if (sscanf(line, "frame %u %u %599s", &v.type, &v.seq, payload) == 3) {
            v.has_frame = 1;
            v.payload_n = unhex(payload, v.payload, sizeof v.payload);
        } else if (strncmp(line, "sample ", 7) == 0) {
            copy_text(v.sample, sizeof v.sample, line);
        } else if (strcmp(line, "end") == 0) {
            run_vector(&v);
            count++;
        } else {
            copy_text(v.msg, sizeof v.msg, line);
        }
    }
    fclose(f);
    return count;
}

/* ---- properties of the node's own ---- */

static void test_crc_check_value(void)
{
    current = "crc";
    uint16_t crc = 0;
    for (const char *p = "123456789"; *p; p++) {
        crc = roost_crc16_update(crc, (uint8_t)*p);
    }
    check(crc == 0x31C3, "CRC of 123456789 is 0x%04X, not 0x31C3", crc);
}

static void test_cobs_long_runs(void)
{
    /* what Python's cobs package gives: 254 non-zero bytes are one block (no trailing code byte);
     * a 255th starts another */
    current = "cobs-long-runs";
    for (int n = 253; n <= 256; n++) {
        uint8_t in[300], out[310], back[310];
        for (int i = 0; i < n; i++) {
            in[i] = (uint8_t)(1 + i % 200);
        }
        roost_cobs_enc_t e;
        roost_cobs_begin(&e, out, sizeof out);
        for (int i = 0; i < n; i++) {
            roost_cobs_put(&e, in[i]);
        }
        uint16_t len = roost_cobs_end(&e);
        int want = n + 1 + (n > 254 ? 1 : 0) + 1; /* data, code bytes, delimiter */
        check(len == want, "%d bytes encode to %u, not %d", n, len, want);
        check(out[0] == (n >= 254 ? 0xFF : n + 1), "%d bytes: first code 0x%02x", n, out[0]);
        memcpy(back, out, len);
        int16_t dn = roost_cobs_decode(back, (uint16_t)(len - 1));
        check(dn == n && memcmp(back, in, (size_t)n) == 0, "%d bytes do not come back (%d)", n, dn);
    }
}

static void test_resync_after_noise(void)
{
    /* noise, a cut frame, an over-long run: each refused once, and the next good frame decodes */
    current = "resync";
    static const uint8_t ack[] = {0x04, 0x01, 0x03, 0x01, 0x03, 0x1c, 0xd5, 0x00};
    roost_deframer_t d;
    roost_frame_t frame;
    roost_deframer_reset(&d);
    int frames = 0, errors = 0, oversize = 0;
    uint8_t stream[1200];
    size_t n = 0;
    memcpy(stream + n, ack, sizeof ack);
    n += sizeof ack;
    stream[n++] = 0x13; /* noise, then the start of a frame cut short */
    stream[n++] = 0x37;
    memcpy(stream + n, ack, 4);
    n += 4;
    memcpy(stream + n, ack, sizeof ack); /* glued to the noise: one bad frame */
    n += sizeof ack;
    memcpy(stream + n, ack, sizeof ack);
    n += sizeof ack;
    for (int i = 0; i < 600; i++) {
        stream[n++] = 0x55; /* more than 258 bytes without a delimiter */
    }
    stream[n++] = 0x00;
    memcpy(stream + n, ack, sizeof ack);
    n += sizeof ack;
    for (size_t i = 0; i < n; i++) {
        uint8_t rx = roost_deframer_push(&d, stream[i], &frame);
        if (rx == ROOST_RX_FRAME) {
            frames++;
            check(frame.type == ROOST_ACK && frame.seq == 1, "a wrong frame after resync");
        } else if (rx != ROOST_RX_NONE) {
            errors++;
            oversize += rx == ROOST_RX_OVERSIZE;
        }
    }
    check(frames == 3, "%d good frames, not 3", frames);
    check(errors == 2 && oversize == 1, "%d errors (%d oversize), not 2 (1)", errors, oversize);
}

static void test_malformed_commands(void)
{
    current = "malformed-commands";
    static const uint8_t cases[][3] = {{0}, {ROOST_CMD_SET_INTERVAL, 1}, {ROOST_CMD_ACTUATE, 1, 0}};
    static const uint8_t lens[] = {0, 2, 3};
    for (size_t i = 0; i < sizeof lens; i++) {
        roost_frame_t f = {ROOST_COMMAND, 7, cases[i], lens[i], 0};
        roost_msg_t m;
        check(roost_msg_parse(&f, &m) == ROOST_MSG_MALFORMED, "a COMMAND of %u bytes taken", lens[i]);
    }
    static const uint8_t unknown[] = {0x7E};
    roost_frame_t f = {ROOST_COMMAND, 7, unknown, 1, 0};
    roost_msg_t m;
    check(roost_msg_parse(&f, &m) == ROOST_MSG_OK && m.code == 0x7E, "an unknown command code is kept (UNKNOWN_COMMAND)");
    static const uint8_t none[1] = {0};
    roost_frame_t ack = {ROOST_ACK, 7, none, 0, 0};
    check(roost_msg_parse(&ack, &m) == ROOST_MSG_MALFORMED, "an ACK without status taken");
}

static void test_payload_limit(void)
{
    current = "payload-limit";
    uint8_t payload[252], out[300];
    memset(payload, 0x11, sizeof payload);
    uint16_t n = roost_frame_encode(out, sizeof out, ROOST_READINGS, 9, payload, 251);
    check(n > 0 && n <= ROOST_MAX_ENCODED + 1, "a 251-byte payload encodes to %u bytes", n);
    roost_frame_t f;
    check(n > 0 && roost_frame_decode(out, (uint16_t)(n - 1), &f) == ROOST_RX_FRAME && f.payload_len == 251 &&
              f.seq == 9 && memcmp(f.payload, payload, 251) == 0,
          "a 251-byte payload does not come back");
    check(roost_frame_encode(out, sizeof out, ROOST_READINGS, 0, payload, 252) == 0, "a 252-byte payload encoded");
    check(roost_frame_encode(out, 20, ROOST_READINGS, 0, payload, 30) == 0, "a frame over its buffer encoded");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS.txt (from tools/vectors_to_text.py)\n", argv[0]);
        return 2;
    }
    int vectors = run_file(argv[1]);
    if (vectors <= 0) {
        fprintf(stderr, "no vectors read from %s\n", argv[1]);
        return 1;
    }
    test_crc_check_value();
    test_cobs_long_runs();
    test_resync_after_noise();
    test_malformed_commands();
    test_payload_limit();
    printf("host-test: %d vectors\n", vectors);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
