#include "node.h"

#include "../proto/frame.h"
#include "../proto/message.h"
#include "../proto/readings.h"
#include "hal.h"

#define TX_MAX (64 + 14 * ROOST_ADC_CHANNELS + 40)

enum { IDLE = 0, ANNOUNCING, SENDING };

static roost_deframer_t rx;
static uint8_t tx[TX_MAX];
static uint16_t tx_len;
static uint8_t tx_seq;
static uint8_t inflight; /* IDLE, ANNOUNCING or SENDING (a READINGS frame) */
static uint32_t retry_at;
static uint8_t next_seq;

static const char *my_id;
static const char *my_firmware;
static uint16_t interval_s;
static uint32_t next_sample_at;

static uint8_t announced;
static uint8_t want_announce;
static uint32_t announce_not_before;

static roost_sample_t queue[ROOST_QUEUE];
static uint8_t q_head;
static uint8_t q_count;
static roost_sample_t in_flight_sample;

/* When the last COMMAND (node_kept_command: its seq, CRC bytes and answer) was acted on. */
static uint32_t cmd_at;

static uint8_t due(uint32_t now, uint32_t at)
{
    return (int32_t)(now - at) >= 0;
}

static void queue_push_back(const roost_sample_t *s)
{
    if (q_count == ROOST_QUEUE) { /* full: the oldest goes */
        q_head = (uint8_t)((q_head + 1) % ROOST_QUEUE);
        q_count--;
    }
    queue[(q_head + q_count) % ROOST_QUEUE] = *s;
    q_count++;
}

static void queue_push_front(const roost_sample_t *s)
{
    if (q_count == ROOST_QUEUE) {
        return; /* it is the oldest of all: it would go first */
    }
    q_head = (uint8_t)((q_head + ROOST_QUEUE - 1) % ROOST_QUEUE);
    queue[q_head] = *s;
    q_count++;
}

static void transmit(uint32_t now)
{
    hal_send(tx, tx_len);
    retry_at = now + ROOST_RETRANSMIT_MS;
}

/* Nothing in flight: send the ANNOUNCE if one is due, else the oldest sample once announced. */
static void pump(uint32_t now)
{
    if (inflight != IDLE) {
        return;
    }
    if (want_announce || !announced) {
        if (!due(now, announce_not_before)) {
            return;
        }
        tx_seq = next_seq++;
        tx_len = roost_announce_encode(tx, sizeof tx, tx_seq, my_id, my_firmware, ROOST_CAPABILITIES, ROOST_OUTPUTS,
                                       interval_s);
        inflight = ANNOUNCING;
        transmit(now);
        return;
    }
    if (q_count == 0) {
        return;
    }
    in_flight_sample = queue[q_head];
    q_head = (uint8_t)((q_head + 1) % ROOST_QUEUE);
    q_count--;
    tx_seq = next_seq++;
    tx_len = roost_readings_encode(tx, sizeof tx, tx_seq, &in_flight_sample, now);
    if (tx_len == 0) {
        return; /* cannot happen with TX_MAX sized for ROOST_ADC_CHANNELS; never send a cut frame */
    }
    inflight = SENDING;
    transmit(now);
}

static void on_ack(uint8_t seq, uint8_t status, uint32_t now)
{
    if (inflight == IDLE || seq != tx_seq) {
        return; /* stale: an answer to a frame already forgotten */
    }
    if (status == ROOST_ACK_BUSY) {
        retry_at = now + ROOST_BUSY_BACKOFF_MS;
        return;
    }
    uint8_t was = inflight;
    inflight = IDLE;
    if (status == ROOST_ACK_OK) {
        if (was == ANNOUNCING) {
            announced = 1;
            want_announce = 0;
        }
    } else if (status == ROOST_ACK_ANNOUNCE_FIRST) {
        announced = 0;
        want_announce = 1;
        if (was == SENDING) {
            queue_push_front(&in_flight_sample); /* not stored: again after announcing */
        }
    } else if (was == ANNOUNCING) {
        /* MALFORMED (or NOT_PAIRED) for an ANNOUNCE: the same bytes would not help; try again later, slowly */
        announce_not_before = now + ROOST_BUSY_BACKOFF_MS;
    }
    /* MALFORMED, NOT_PAIRED for READINGS: drop the frame */
}

static uint8_t act(const roost_msg_t *msg, uint32_t now)
{
    switch (msg->code) {
    case ROOST_CMD_SET_INTERVAL:
        if (msg->seconds == 0) {
            return ROOST_RESULT_BAD_ARGUMENT;
        }
        interval_s = msg->seconds;
        hal_save_interval(interval_s);
        if (!due(now + (uint32_t)interval_s * 1000u, next_sample_at)) {
            next_sample_at = now + (uint32_t)interval_s * 1000u; /* sooner: from now on */
        }
        return ROOST_RESULT_DONE;
    case ROOST_CMD_ACTUATE:
        return hal_actuate(msg->output, msg->value);
    case ROOST_CMD_REBOOT:
        return ROOST_RESULT_DONE; /* after the RESULT has gone */
    case ROOST_CMD_IDENTIFY:
        want_announce = 1;
        return ROOST_RESULT_DONE;
    default:
        return ROOST_RESULT_UNKNOWN_COMMAND;
    }
}

static void answer(uint8_t seq, uint8_t status)
{
    uint8_t out[8];
    uint16_t n = roost_result_encode(out, sizeof out, seq, status);
    hal_send(out, n);
}

static void on_command(const roost_frame_t *frame, const roost_msg_t *msg, uint32_t now)
{
    node_kept_command_t *last = &node_kept_command;
    if (last->magic == NODE_KEPT_MAGIC && frame->seq == last->seq && frame->crc == last->crc &&
        !due(now, cmd_at + ROOST_COMMAND_WINDOW_MS)) {
        answer(frame->seq, last->status); /* our RESULT was lost: the same answer, not the same act */
        return;
    }
    uint8_t status = act(msg, now);
    last->magic = NODE_KEPT_MAGIC;
    last->seq = frame->seq;
    last->crc = frame->crc;
    last->status = status;
    cmd_at = now;
    answer(frame->seq, status);
    if (msg->code == ROOST_CMD_REBOOT) {
        hal_reboot();
    }
    if (msg->code == ROOST_CMD_IDENTIFY && inflight == ANNOUNCING) {
        transmit(now); /* already announcing (the gateway may have missed it while opening the port): now */
    }
}

static void on_frame(const roost_frame_t *frame, uint32_t now)
{
    roost_msg_t msg;
    if (roost_msg_parse(frame, &msg) != ROOST_MSG_OK) {
        return; /* unknown type, malformed, or a node's message: wait for the next frame */
    }
    if (msg.type == ROOST_ACK) {
        on_ack(frame->seq, msg.status, now);
    } else {
        on_command(frame, &msg, now);
    }
}

static void take_sample(uint32_t now)
{
    roost_sample_t s;
    hal_sample(&s);
    s.taken_ms = now;
    queue_push_back(&s);
}

void node_init(const char *node_id, const char *firmware, uint16_t interval, uint8_t restarted_by_reboot)
{
    static const uint8_t delimiter = 0;
    my_id = node_id;
    my_firmware = firmware;
    interval_s = interval ? interval : 1;
    roost_deframer_reset(&rx); /* all of the state from scratch, as after a reset */
    inflight = IDLE;
    next_seq = 0;
    announced = 0;
    want_announce = 1;
    q_head = 0;
    q_count = 0;
    uint32_t now = hal_millis();
    if (!restarted_by_reboot) {
        node_kept_command.magic = 0; /* power-on, reset button: nothing was kept */
    }
    cmd_at = now; /* after a REBOOT: its 10 s run from the restart, a few milliseconds late */
    announce_not_before = now;
    next_sample_at = now + (uint32_t)interval_s * 1000u;
    hal_send(&delimiter, 1); /* ends whatever partial frame the gateway holds */
}

void node_poll(void)
{
    int16_t c;
    while ((c = hal_recv()) >= 0) {
        roost_frame_t frame;
        if (roost_deframer_push(&rx, (uint8_t)c, &frame) == ROOST_RX_FRAME) {
            on_frame(&frame, hal_millis());
        }
    }
    uint32_t now = hal_millis();
    if (due(now, next_sample_at)) {
        take_sample(now);
        next_sample_at += (uint32_t)interval_s * 1000u;
        if (due(now, next_sample_at)) {
            next_sample_at = now + (uint32_t)interval_s * 1000u; /* fell behind: once, not a burst */
        }
    }
    if (inflight != IDLE && due(now, retry_at)) {
        transmit(now);
    }
    pump(now);
}
