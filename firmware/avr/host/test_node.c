/* The node's state machine (src/node/node.c), built natively over a fake board: a clock the test moves,
 * the bytes the node sends captured, the gateway's bytes fed in. What the simulator-backed tests cannot
 * provoke from a real gateway at will: BUSY's back-off, a MALFORMED answer, a full queue, a command
 * repeated after its 10 s. Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <stdio.h>
#include <string.h>

#include "../src/node/hal.h"
#include "../src/node/node.h"
#include "../src/proto/frame.h"
#include "../src/proto/message.h"

static int passed;
static int failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            passed++;                                                                                                  \
        } else {                                                                                                       \
            failed++;                                                                                                  \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                                                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

/* ---- the fake board ---- */

node_kept_command_t node_kept_command;
static uint32_t now_ms;
static uint8_t rx[512];
static uint16_t rx_len, rx_pos;
static uint8_t tx[8192];
static uint16_t tx_len;
static uint16_t saved_interval;
static int saves;
static int actuations;
static uint8_t last_output;
static int16_t last_value;
static int reboots;
static uint16_t adc0 = 100;

uint32_t hal_millis(void)
{
    return now_ms;
}

int16_t hal_recv(void)
{
    return rx_pos < rx_len ? rx[rx_pos++] : -1;
}

void hal_send(const uint8_t *bytes, uint16_t n)
{
    if (tx_len + n <= sizeof tx) {
        memcpy(tx + tx_len, bytes, n);
        tx_len += n;
    }
}

void hal_sample(roost_sample_t *s)
{
    memset(s, 0, sizeof *s);
    s->adc_mv[0] = adc0++; /* every sample different: its frame tells which one it is */
}

uint8_t hal_actuate(uint8_t output, int16_t value)
{
    actuations++;
    last_output = output;
    last_value = value;
    return output < ROOST_OUTPUTS ? ROOST_RESULT_DONE : ROOST_RESULT_BAD_ARGUMENT;
}

void hal_save_interval(uint16_t seconds)
{
    saves++;
    saved_interval = seconds;
}

void hal_reboot(void)
{
    reboots++; /* the test boots the node again itself */
}

/* ---- helpers ---- */

typedef struct {
    uint8_t type, seq;
    uint8_t payload[256];
    uint8_t payload_len;
    uint8_t wire[300];
    uint16_t wire_len;
} sent_t;

static sent_t sent[64];
static int n_sent;

/* Run the node until `ms` have passed, 1 ms at a time; cut what it sent into frames. */
static void run(uint32_t ms)
{
    for (uint32_t i = 0; i < ms; i++) {
        node_poll();
        now_ms++;
    }
    node_poll();
    n_sent = 0;
    uint16_t start = 0;
    for (uint16_t i = 0; i < tx_len; i++) {
        if (tx[i] != 0) {
            continue;
        }
        if (i > start && n_sent < 64) {
            sent_t *s = &sent[n_sent];
            uint8_t copy[300];
            uint16_t len = (uint16_t)(i - start);
            memcpy(s->wire, tx + start, len);
            s->wire_len = len;
            memcpy(copy, tx + start, len);
            roost_frame_t f;
            if (roost_frame_decode(copy, len, &f) == ROOST_RX_FRAME) {
                s->type = f.type;
                s->seq = f.seq;
                s->payload_len = f.payload_len;
                memcpy(s->payload, f.payload, f.payload_len);
                n_sent++;
            }
        }
        start = (uint16_t)(i + 1);
    }
    tx_len = 0;
}

static void gateway_sends(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t n)
{
    rx_len = roost_frame_encode(rx, sizeof rx, type, seq, payload, n);
    rx_pos = 0;
}

static void ack(uint8_t seq, uint8_t status)
{
    gateway_sends(ROOST_ACK, seq, &status, 1);
}

static int count(uint8_t type)
{
    int c = 0;
    for (int i = 0; i < n_sent; i++) {
        c += sent[i].type == type;
    }
    return c;
}

static const sent_t *first(uint8_t type)
{
    for (int i = 0; i < n_sent; i++) {
        if (sent[i].type == type) {
            return &sent[i];
        }
    }
    return NULL;
}

/* The A0 value inside a READINGS frame (the node's pack: its first record's value, a CBOR uint16). */
static int a0_of(const sent_t *s)
{
    for (int i = 0; i + 3 < s->payload_len; i++) {
        if (s->payload[i] == 0x02 && s->payload[i + 1] == 0x18) {
            return s->payload[i + 2];
        }
        if (s->payload[i] == 0x02 && s->payload[i + 1] == 0x19) {
            return s->payload[i + 2] << 8 | s->payload[i + 3];
        }
    }
    return -1;
}

static void boot(uint16_t interval, uint8_t by_reboot)
{
    tx_len = 0;
    rx_len = rx_pos = 0;
    node_init("node-t", "9.9.9", interval, by_reboot);
}

static uint8_t announce_and_ack(void)
{
    run(10);
    const sent_t *a = first(ROOST_ANNOUNCE);
    CHECK(a != NULL, "no ANNOUNCE at boot");
    if (a == NULL) {
        return 0;
    }
    ack(a->seq, ROOST_ACK_OK);
    run(1);
    return a->seq;
}

/* ---- the cases ---- */

static void test_boot_announce_and_retransmission(void)
{
    boot(60, 0);
    run(0);
    CHECK(tx_len == 0 && n_sent == 1 && sent[0].type == ROOST_ANNOUNCE && sent[0].seq == 0,
          "boot: a 0x00, then ANNOUNCE seq 0");
    sent_t a = sent[0];
    run(499);
    CHECK(n_sent == 0, "nothing more within 0.5 s");
    run(2);
    CHECK(n_sent == 1 && sent[0].wire_len == a.wire_len && memcmp(sent[0].wire, a.wire, a.wire_len) == 0,
          "the same ANNOUNCE bytes again after 0.5 s");
    ack(7, ROOST_ACK_OK); /* stale: another seq */
    run(501);
    CHECK(count(ROOST_ANNOUNCE) == 1, "a stale ACK is ignored");
    ack(0, ROOST_ACK_OK);
    run(5000);
    CHECK(n_sent == 0, "nothing after the ANNOUNCE is acknowledged until the interval");
}

static void test_busy_backs_off_five_seconds(void)
{
    boot(1, 0);
    announce_and_ack();
    run(1000);
    const sent_t *r = first(ROOST_READINGS);
    CHECK(r != NULL && r->seq == 1, "READINGS seq 1 after the interval");
    if (r == NULL) {
        return;
    }
    ack(1, ROOST_ACK_BUSY);
    run(4900);
    CHECK(count(ROOST_READINGS) == 0, "nothing sent within 5 s of BUSY (%d)", count(ROOST_READINGS));
    run(200);
    CHECK(count(ROOST_READINGS) == 1 && first(ROOST_READINGS)->seq == 1, "the same frame after 5 s");
}

static void test_malformed_drops_and_queue_keeps_newest(void)
{
    boot(1, 0);
    announce_and_ack();
    adc0 = 100;
    run(1000); /* sample 100 in flight */
    const sent_t *r = first(ROOST_READINGS);
    CHECK(r != NULL && a0_of(r) == 100, "the first sample in flight");
    run(20000); /* 20 more samples: the queue keeps the newest 8 */
    ack(1, ROOST_ACK_MALFORMED);
    int values[16];
    int n = 0;
    for (int i = 0; i < 12; i++) {
        run(1);
        const sent_t *next = first(ROOST_READINGS);
        if (next == NULL) {
            break;
        }
        values[n++] = a0_of(next);
        ack(next->seq, ROOST_ACK_OK);
    }
    /* MALFORMED: sample 100 is not sent again; 8 queued of 101..120 (the oldest went) plus new ones */
    CHECK(n >= 8 && values[0] == 113 && values[7] == 120, "after MALFORMED: %d frames, first %d, eighth %d", n,
          n ? values[0] : -1, n > 7 ? values[7] : -1);
}

static void test_announce_first_resends_the_sample_after_announcing(void)
{
    boot(1, 0);
    announce_and_ack();
    adc0 = 50;
    run(1000);
    const sent_t *r = first(ROOST_READINGS);
    CHECK(r != NULL && a0_of(r) == 50, "sample 50 in flight");
    ack(r->seq, ROOST_ACK_ANNOUNCE_FIRST);
    run(1);
    const sent_t *a = first(ROOST_ANNOUNCE);
    CHECK(a != NULL && count(ROOST_READINGS) == 0, "ANNOUNCE_FIRST: the ANNOUNCE goes first");
    ack(a->seq, ROOST_ACK_OK);
    run(1);
    r = first(ROOST_READINGS);
    CHECK(r != NULL && a0_of(r) == 50, "then the same sample again");
}

static void test_commands_and_their_repetition(void)
{
    boot(60, 0);
    announce_and_ack();
    saves = 0;
    uint8_t set5[] = {ROOST_CMD_SET_INTERVAL, 0, 5};
    gateway_sends(ROOST_COMMAND, 9, set5, sizeof set5);
    run(1);
    const sent_t *res = first(ROOST_RESULT);
    CHECK(res && res->seq == 9 && res->payload[0] == ROOST_RESULT_DONE && saves == 1 && saved_interval == 5,
          "SET_INTERVAL 5: DONE and saved");
    gateway_sends(ROOST_COMMAND, 9, set5, sizeof set5); /* its RESULT was lost: the same again */
    run(9000);
    res = first(ROOST_RESULT);
    CHECK(res && res->seq == 9 && res->payload[0] == ROOST_RESULT_DONE && saves == 1,
          "the same COMMAND within 10 s: answered, not done again (saves %d)", saves);
    gateway_sends(ROOST_COMMAND, 9, set5, sizeof set5);
    run(1);
    CHECK(saves == 1 && count(ROOST_RESULT) == 1, "still within 10 s of the first");
    run(1100);
    gateway_sends(ROOST_COMMAND, 9, set5, sizeof set5);
    run(1);
    CHECK(saves == 2, "after 10 s the same bytes are a new command");
    uint8_t set0[] = {ROOST_CMD_SET_INTERVAL, 0, 0};
    gateway_sends(ROOST_COMMAND, 9, set0, sizeof set0); /* the same seq, other bytes: a new command */
    run(1);
    res = first(ROOST_RESULT);
    CHECK(res && res->payload[0] == ROOST_RESULT_BAD_ARGUMENT && saves == 2, "SET_INTERVAL 0: BAD_ARGUMENT");
    uint8_t act[] = {ROOST_CMD_ACTUATE, 2, 0x00, 0x80};
    gateway_sends(ROOST_COMMAND, 10, act, sizeof act);
    run(1);
    res = first(ROOST_RESULT);
    CHECK(res && res->payload[0] == ROOST_RESULT_DONE && actuations == 1 && last_output == 2 && last_value == 128,
          "ACTUATE 2 = 128");
    uint8_t unknown[] = {0x7E};
    gateway_sends(ROOST_COMMAND, 11, unknown, sizeof unknown);
    run(1);
    res = first(ROOST_RESULT);
    CHECK(res && res->payload[0] == ROOST_RESULT_UNKNOWN_COMMAND, "an unknown code: UNKNOWN_COMMAND");
    uint8_t cut[] = {ROOST_CMD_ACTUATE, 1};
    gateway_sends(ROOST_COMMAND, 12, cut, sizeof cut);
    run(1);
    CHECK(count(ROOST_RESULT) == 0 && actuations == 1, "a malformed COMMAND is not answered");
}

static void test_reboot_is_not_done_twice(void)
{
    boot(60, 0);
    announce_and_ack();
    reboots = 0;
    uint8_t reboot_cmd[] = {ROOST_CMD_REBOOT};
    gateway_sends(ROOST_COMMAND, 20, reboot_cmd, 1);
    run(1);
    CHECK(reboots == 1 && count(ROOST_RESULT) == 1, "REBOOT: RESULT, then the restart");
    boot(60, 1); /* the watchdog restarted it; the kept command survived */
    run(1);
    CHECK(count(ROOST_ANNOUNCE) == 1 && sent[0].seq == 0, "it announces again from seq 0");
    gateway_sends(ROOST_COMMAND, 20, reboot_cmd, 1); /* the gateway never saw the RESULT */
    run(1);
    const sent_t *res = first(ROOST_RESULT);
    CHECK(reboots == 1 && res && res->seq == 20 && res->payload[0] == ROOST_RESULT_DONE,
          "the repeated REBOOT is answered, not done");
    boot(60, 0); /* a power cycle: nothing kept */
    gateway_sends(ROOST_COMMAND, 20, reboot_cmd, 1);
    run(1);
    CHECK(reboots == 2, "after a power-on the same bytes are a new command");
}

static void test_identify_while_announcing_answers_and_announces_at_once(void)
{
    boot(60, 0);
    run(100);
    uint8_t identify[] = {ROOST_CMD_IDENTIFY};
    gateway_sends(ROOST_COMMAND, 30, identify, 1);
    run(0);
    CHECK(n_sent == 2 && sent[0].type == ROOST_RESULT && sent[1].type == ROOST_ANNOUNCE,
          "IDENTIFY during the ANNOUNCE: RESULT and the ANNOUNCE at once (%d frames)", n_sent);
}

int main(void)
{
    test_boot_announce_and_retransmission();
    test_busy_backs_off_five_seconds();
    test_malformed_drops_and_queue_keeps_newest();
    test_announce_first_resends_the_sample_after_announcing();
    test_commands_and_their_repetition();
    test_reboot_is_not_done_twice();
    test_identify_while_announcing_answers_and_announces_at_once();
    printf("node-test: the state machine\n");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
