/* roost-coap-node: a Roost CoAP sensor node for Linux-class devices (OpenWRT, a Raspberry Pi Zero).
 *
 * Every interval it reads its sources and posts them to the gateway as one SenML CBOR pack
 * (POST /telemetry, confirmable; libcoap retransmits). Packs the gateway has not acknowledged wait
 * in a bounded queue and go again. It observes /cmd/{node} on the gateway for commands and posts
 * each result back there. See README.md.
 */
#define _POSIX_C_SOURCE 200809L
#include <coap3/coap.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "io.h"
#include "senml.h"

#define VERSION "1.0"
#define SANE_CLOCK 1577836800.0 /* 2020-01-01: a wall clock before that was never set */
#define CF_TEXT 0
#define CF_SENML_CBOR 112

typedef struct {
  double values[MAX_SOURCES];
  unsigned char ok[MAX_SOURCES];
  double wall, mono;
} pack;

typedef struct {
  int in_flight;
  coap_mid_t mid;
  uint8_t token[8];
  size_t token_len;
} exchange;

static config cfg;
static coap_session_t *session;
static volatile sig_atomic_t stopping;

static pack *queue;
static size_t q_head, q_len;
static exchange post, observe, result;
static double next_read_at, next_send_at, observe_at;
static int observing, observe_unpaired, gateway_silent;
static unsigned long long last_command;
static char last_result[160];
static unsigned long packs_sent, readings_sent, packs_dropped, packs_refused, read_errors;
static unsigned char failing[MAX_SOURCES];

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(unsigned level, const char *fmt, ...) {
  va_list ap;
  if (level > cfg.verbose) return;
  fprintf(stderr, "roost-coap-node: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static const char *code_text(coap_pdu_code_t code, char *buf, size_t len) {
  snprintf(buf, len, "%u.%02u", (unsigned)(code >> 5) & 7u, (unsigned)code & 31u);
  return buf;
}

static void diagnostic(const coap_pdu_t *pdu, char *buf, size_t len) {
  size_t n = 0;
  const uint8_t *data = NULL;
  buf[0] = '\0';
  if (coap_get_data(pdu, &n, &data) && n > 0) snprintf(buf, len, ": %.*s", (int)(n < 120 ? n : 120), data);
}

/* A request to the gateway; NULL when libcoap cannot make one. */
static coap_pdu_t *request(coap_pdu_code_t code, exchange *x) {
  coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, code, coap_new_message_id(session),
                                  coap_session_max_pdu_size(session));
  if (pdu == NULL) return NULL;
  coap_session_new_token(session, &x->token_len, x->token);
  coap_add_token(pdu, x->token_len, x->token);
  return pdu;
}

static void send_request(coap_pdu_t *pdu, exchange *x, const char *what) {
  x->mid = coap_send(session, pdu);
  x->in_flight = x->mid != COAP_INVALID_MID;
  if (!x->in_flight) say(0, "could not send %s to the gateway (libcoap refused it)", what);
}

static void add_uint_option(coap_pdu_t *pdu, coap_option_num_t num, unsigned value) {
  uint8_t buf[4];
  coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof buf, value), buf);
}

static int same_token(const coap_pdu_t *pdu, const exchange *x) {
  coap_bin_const_t t = coap_pdu_get_token(pdu);
  return t.length == x->token_len && memcmp(t.s, x->token, t.length) == 0;
}

/* -- readings ------------------------------------------------------------------------------- */

static void take_readings(void) {
  pack p;
  size_t i, good = 0;
  char err[300];
  memset(&p, 0, sizeof p);
  p.mono = mono();
  p.wall = (double)time(NULL);
  {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) p.wall = (double)ts.tv_sec + ts.tv_nsec / 1e9;
  }
  for (i = 0; i < cfg.n_sources; i++) {
    if (source_read(&cfg.sources[i], &p.values[i], err, sizeof err) == 0) {
      p.ok[i] = 1;
      good++;
      if (failing[i]) say(0, "source %s reads again", cfg.sources[i].name);
      failing[i] = 0;
    } else { /* said once (every time when verbose), counted every time */
      read_errors++;
      if (!failing[i] || cfg.verbose) say(0, "source %s: %s", cfg.sources[i].name, err);
      failing[i] = 1;
    }
  }
  if (good == 0) return;
  if (q_len == cfg.queue) { /* full: forget the oldest pack that is not on its way (or this one) */
    size_t drop = post.in_flight ? 1 : 0;
    size_t k;
    if (packs_dropped++ == 0 || cfg.verbose)
      say(0, "the gateway has not taken %u packs: dropping the oldest (%lu dropped so far)", cfg.queue,
          packs_dropped);
    if (drop >= q_len) return;
    for (k = drop; k + 1 < q_len; k++) queue[(q_head + k) % cfg.queue] = queue[(q_head + k + 1) % cfg.queue];
    q_len--;
  }
  queue[(q_head + q_len) % cfg.queue] = p;
  q_len++;
}

static void send_pack(void) {
  senml_reading r[MAX_SOURCES];
  uint8_t buf[1024];
  const pack *p;
  size_t i, n = 0, len;
  int has_time = 0;
  double bt = 0, now = mono();
  coap_pdu_t *pdu;
  if (q_len == 0 || post.in_flight || now < next_send_at) return;
  p = &queue[q_head];
  for (i = 0; i < cfg.n_sources; i++) {
    if (!p->ok[i]) continue;
    r[n].name = cfg.sources[i].name;
    r[n].unit = cfg.sources[i].unit[0] ? cfg.sources[i].unit : NULL;
    r[n].value = p->values[i];
    n++;
  }
  if (p->wall >= SANE_CLOCK) { /* a set clock: absolute time, to the millisecond */
    has_time = 1;
    bt = floor(p->wall * 1000.0 + 0.5) / 1000.0;
  } else if (now - p->mono >= 1.0) { /* no clock: how long ago, which the gateway resolves */
    has_time = 1;
    bt = -floor(now - p->mono + 0.5);
  }
  len = senml_pack(buf, sizeof buf, cfg.node, has_time, bt, r, n);
  if (len == 0) {
    say(0, "a pack of %zu readings does not fit in %zu bytes: dropped", n, sizeof buf);
    q_head = (q_head + 1) % cfg.queue;
    q_len--;
    return;
  }
  pdu = request(COAP_REQUEST_CODE_POST, &post);
  if (pdu == NULL) return;
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 9, (const uint8_t *)"telemetry");
  add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, CF_SENML_CBOR);
  coap_add_data(pdu, len, buf);
  send_request(pdu, &post, "readings");
}

static void pack_answered(const coap_pdu_t *pdu) {
  coap_pdu_code_t code = coap_pdu_get_code(pdu);
  char c[8], why[140];
  size_t n = 0, i;
  post.in_flight = 0;
  code_text(code, c, sizeof c);
  diagnostic(pdu, why, sizeof why);
  if (code >> 5 == 2 || (code >> 5 == 4 && code != COAP_RESPONSE_CODE(403))) {
    for (i = 0; i < cfg.n_sources; i++) n += queue[q_head].ok[i];
    q_head = (q_head + 1) % cfg.queue;
    q_len--;
    if (code >> 5 == 2) {
      packs_sent++;
      readings_sent += n;
      say(1, "sent %zu readings: %s", n, c);
    } else { /* the gateway will never take this pack: sending it again cannot help */
      packs_refused++;
      say(0, "the gateway refused a pack of %zu readings (%s%s): dropped", n, c, why);
    }
    if (gateway_silent) {
      say(0, "the gateway answers again; %zu pack%s still to send", q_len, q_len == 1 ? "" : "s");
      gateway_silent = 0;
      observe_at = mono(); /* it may have restarted and forgotten the observation */
    }
    if (observe_unpaired && code >> 5 == 2) { /* paired since the gateway refused to take commands */
      observe_unpaired = 0;
      observe_at = mono();
    }
    next_send_at = mono();
    return;
  }
  if (code == COAP_RESPONSE_CODE(403))
    say(0, "the gateway does not take readings from %s (%s%s): pair the node on the gateway; retrying in %u s",
        cfg.node, c, why, cfg.retry_s);
  else
    say(0, "the gateway cannot take readings now (%s%s); retrying in %u s", c, why, cfg.retry_s);
  next_send_at = mono() + cfg.retry_s;
  if (code == COAP_RESPONSE_CODE(503)) { /* Max-Age says when to retry */
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(pdu, COAP_OPTION_MAXAGE, &it);
    if (opt != NULL) next_send_at = mono() + coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
  }
}

/* -- commands ------------------------------------------------------------------------------- */

static void send_result(void) {
  coap_pdu_t *pdu;
  size_t node_len = strlen(cfg.node);
  if (result.in_flight) return;
  pdu = request(COAP_REQUEST_CODE_POST, &result);
  if (pdu == NULL) return;
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 3, (const uint8_t *)"cmd");
  coap_add_option(pdu, COAP_OPTION_URI_PATH, node_len, (const uint8_t *)cfg.node);
  add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, CF_TEXT);
  coap_add_data(pdu, strlen(last_result), (const uint8_t *)last_result);
  send_request(pdu, &result, "a command's result");
}

static long arg(const char *args, const char *name, long fallback, int *found) {
  size_t n = strlen(name);
  const char *p = args;
  while ((p = strstr(p, name)) != NULL) {
    if ((p == args || p[-1] == ' ') && p[n] == '=') {
      *found = 1;
      return strtol(p + n + 1, NULL, 10);
    }
    p += n;
  }
  *found = 0;
  return fallback;
}

/* Carries out one command; writes what went wrong into err and returns -1, or returns 0. */
static int execute(const char *action, const char *args, char *err, size_t errlen) {
  int found;
  if (strcmp(action, "set-interval") == 0) {
    long s = arg(args, "seconds", 0, &found);
    if (!found || s < 1 || s > 86400) return snprintf(err, errlen, "seconds must be 1 to 86400"), -1;
    cfg.interval_s = (unsigned)s;
    next_read_at = mono() + s;
    say(0, "reading every %ld s from now on (asked by the gateway)", s);
    return 0;
  }
  if (strcmp(action, "read-now") == 0) {
    next_read_at = mono();
    return 0;
  }
  if (strcmp(action, "identify") == 0) {
    say(0, "identify: this is node %s (asked by the gateway)", cfg.node);
    return 0;
  }
  if (strcmp(action, "actuate") == 0 || strcmp(action, "on") == 0 || strcmp(action, "off") == 0) {
    long out = arg(args, "output", 0, &found), value;
    if (out < 0 || (size_t)out >= cfg.n_outputs)
      return snprintf(err, errlen, "there is no output %ld (this node has %zu)", out, cfg.n_outputs), -1;
    if (action[0] == 'a') {
      value = arg(args, "value", 0, &found);
      if (!found) return snprintf(err, errlen, "actuate needs value=N"), -1;
    } else {
      value = action[1] == 'n';
    }
    if (output_write(&cfg.outputs[out], value, err, errlen) != 0) return -1;
    say(1, "output %s set to %ld", cfg.outputs[out].name, value);
    return 0;
  }
  return snprintf(err, errlen, "this node cannot '%s'", action), -1;
}

static void command(const uint8_t *data, size_t len) {
  char line[200], action[32], err[120];
  unsigned long long id;
  int used = 0;
  if (len == 0) return; /* nothing waiting */
  if (len >= sizeof line) len = sizeof line - 1;
  memcpy(line, data, len);
  line[len] = '\0';
  if (sscanf(line, "%llu %31s %n", &id, action, &used) < 2 || used == 0) {
    say(0, "the gateway sent a command this node does not understand: '%s'", line);
    return;
  }
  if (id == last_command) { /* a repeat (our result may have been lost): answer again, do not do it twice */
    send_result();
    return;
  }
  say(1, "command %llu: %s", id, line + (strchr(line, ' ') - line) + 1);
  last_command = id;
  if (execute(action, line + used, err, sizeof err) == 0)
    snprintf(last_result, sizeof last_result, "%llu ok", id);
  else {
    snprintf(last_result, sizeof last_result, "%llu error %s", id, err);
    say(0, "command %s failed: %s", action, err);
  }
  result.in_flight = 0; /* a new result replaces one still on its way */
  send_result();
}

static void register_observation(void) {
  char query[128];
  coap_pdu_t *pdu;
  if (observe.in_flight) return;
  pdu = request(COAP_REQUEST_CODE_GET, &observe);
  if (pdu == NULL) return;
  add_uint_option(pdu, COAP_OPTION_OBSERVE, COAP_OBSERVE_ESTABLISH);
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 3, (const uint8_t *)"cmd");
  coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(cfg.node), (const uint8_t *)cfg.node);
  snprintf(query, sizeof query, "actions=set-interval,read-now,identify%s", cfg.n_outputs ? ",actuate,on,off" : "");
  coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(query), (const uint8_t *)query);
  snprintf(query, sizeof query, "outputs=%zu", cfg.n_outputs);
  coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(query), (const uint8_t *)query);
  send_request(pdu, &observe, "its command observation");
  observe_at = mono() + cfg.observe_refresh_s;
}

static void observation_answered(const coap_pdu_t *pdu) {
  coap_pdu_code_t code = coap_pdu_get_code(pdu);
  coap_opt_iterator_t it;
  size_t len = 0;
  const uint8_t *data = NULL;
  char c[8], why[140];
  observe.in_flight = 0;
  if (code >> 5 != 2) {
    diagnostic(pdu, why, sizeof why);
    say(0, "the gateway takes no commands for %s (%s%s); asking again in %u s", cfg.node,
        code_text(code, c, sizeof c), why, cfg.observe_refresh_s);
    observing = 0;
    observe_unpaired = code == COAP_RESPONSE_CODE(403);
    return;
  }
  if (!observing && coap_check_option(pdu, COAP_OPTION_OBSERVE, &it) != NULL) {
    observing = 1;
    say(1, "listening for commands from the gateway");
  }
  if (coap_get_data(pdu, &len, &data)) command(data, len);
}

/* -- libcoap's callbacks -------------------------------------------------------------------- */

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *received,
                                   const coap_mid_t mid) {
  (void)s;
  (void)sent;
  (void)mid;
  if (post.in_flight && same_token(received, &post)) {
    pack_answered(received);
    return COAP_RESPONSE_OK;
  }
  if (same_token(received, &observe)) { /* the first answer and every notification */
    observation_answered(received);
    return COAP_RESPONSE_OK;
  }
  if (result.in_flight && same_token(received, &result)) {
    result.in_flight = 0;
    return COAP_RESPONSE_OK;
  }
  return COAP_RESPONSE_FAIL; /* e.g. a notification of an observation replaced since: reset it */
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason, const coap_mid_t mid) {
  (void)s;
  (void)sent;
  if (reason == COAP_NACK_ICMP_ISSUE) {
    /* "port unreachable": the gateway is not running (yet). libcoap keeps retransmitting the message,
     * so it stays on its way until it is answered or libcoap gives up (a second nack). */
    if (post.in_flight && mid == post.mid && !gateway_silent) {
      say(0, "the gateway at %s is not reachable (nothing listens there): %zu pack%s waiting", cfg.gateway, q_len,
          q_len == 1 ? "" : "s");
      gateway_silent = 1;
    }
    return;
  }
  if (post.in_flight && mid == post.mid) {
    post.in_flight = 0;
    next_send_at = mono() + cfg.retry_s;
    if (!gateway_silent || cfg.verbose)
      say(0, "the gateway at %s does not answer (%s): %zu pack%s waiting; sending again every %u s", cfg.gateway,
          reason == COAP_NACK_TOO_MANY_RETRIES ? "no answer to any retransmission" : "refused", q_len,
          q_len == 1 ? "" : "s", cfg.retry_s);
    gateway_silent = 1;
  } else if (observe.in_flight && mid == observe.mid) {
    observe.in_flight = 0;
    observing = 0;
    observe_at = mono() + cfg.retry_s;
  } else if (result.in_flight && mid == result.mid) {
    result.in_flight = 0; /* the gateway notifies the command again while it waits; then the result goes again */
  }
}

/* -- set-up ----------------------------------------------------------------------------------- */

static int resolve(const char *uri, coap_address_t *dst) {
  coap_uri_t u;
  char host[256];
  struct addrinfo hints, *res = NULL;
  int rc;
  if (coap_split_uri((const uint8_t *)uri, strlen(uri), &u) != 0 || u.scheme != COAP_URI_SCHEME_COAP) {
    fprintf(stderr, "roost-coap-node: gateway '%s' is not a coap:// URI (coap://[::1]:5683)\n", uri);
    return -1;
  }
  snprintf(host, sizeof host, "%.*s", (int)u.host.length, (const char *)u.host.s);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || res == NULL) {
    fprintf(stderr, "roost-coap-node: cannot find the gateway's address %s: %s\n", host, gai_strerror(rc));
    return -1;
  }
  coap_address_init(dst);
  dst->size = res->ai_addrlen;
  memcpy(&dst->addr, res->ai_addr, res->ai_addrlen);
  coap_address_set_port(dst, u.port);
  freeaddrinfo(res);
  return 0;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: roost-coap-node [-c FILE] [--gateway URI] [--node ID] [--interval S] [--source SPEC]...\n"
          "                       [--output SPEC]... [--queue N] [--retry S] [--verbose N] [--version]\n"
          "Reads its sources every interval and posts them to a Roost gateway over CoAP (SenML CBOR),\n"
          "and carries out the gateway's commands. Every --key VALUE is also a 'key = value' line in FILE.\n"
          "  --source 'temperature unit=Cel scale=0.001 file=/sys/class/thermal/thermal_zone0/temp'\n"
          "  --source 'load command=cut -d\" \" -f1 /proc/loadavg'   --source 'test value=20 step=0.5'\n"
          "  --output 'led file=/sys/class/leds/led0/brightness'   --output 'relay command=gpioset 0 17=$ROOST_VALUE'\n");
}

int main(int argc, char **argv) {
  char err[512];
  coap_context_t *ctx;
  coap_address_t dst;
  struct sigaction sa;
  int i, rc = 0;

  config_defaults(&cfg);
  for (i = 1; i < argc; i++) { /* the config file first, so that the command line wins */
    if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
      if (config_file(&cfg, argv[++i], err, sizeof err) != 0) {
        fprintf(stderr, "roost-coap-node: %s\n", err);
        return 2;
      }
    }
  }
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
      i++;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("roost-coap-node %s (%s)\n", VERSION, coap_package_version());
      return 0;
    } else if (strncmp(a, "--", 2) == 0 && i + 1 < argc) {
      if (config_set(&cfg, a + 2, argv[++i], err, sizeof err) != 0) {
        fprintf(stderr, "roost-coap-node: %s\n", err);
        return 2;
      }
    } else {
      fprintf(stderr, "roost-coap-node: unexpected '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (config_check(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "roost-coap-node: %s\n", err);
    return 2;
  }
  queue = calloc(cfg.queue, sizeof *queue);
  if (queue == NULL) {
    fprintf(stderr, "roost-coap-node: out of memory for a queue of %u packs\n", cfg.queue);
    return 1;
  }

  coap_startup();
  coap_set_log_level(cfg.verbose >= 2 ? LOG_DEBUG : LOG_EMERG);
  if (resolve(cfg.gateway, &dst) != 0) return 2;
  ctx = coap_new_context(NULL);
  session = ctx ? coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP) : NULL;
  if (session == NULL) {
    fprintf(stderr, "roost-coap-node: cannot open a CoAP session to %s\n", cfg.gateway);
    return 1;
  }
  {
    coap_fixed_point_t ack = {(uint16_t)(cfg.ack_timeout_ms / 1000), (uint16_t)(cfg.ack_timeout_ms % 1000)};
    coap_session_set_ack_timeout(session, ack);
    coap_session_set_max_retransmit(session, cfg.max_retransmit);
  }
  coap_register_response_handler(ctx, on_response);
  coap_register_nack_handler(ctx, on_nack);

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  fprintf(stderr, "roost-coap-node %s: node %s sends %zu reading%s every %u s to %s\n", VERSION, cfg.node,
          cfg.n_sources, cfg.n_sources == 1 ? "" : "s", cfg.interval_s, cfg.gateway);
  next_read_at = next_send_at = observe_at = mono();
  while (!stopping) {
    double now = mono(), wake;
    if (now >= next_read_at) {
      take_readings();
      next_read_at += cfg.interval_s;
      if (next_read_at <= now) next_read_at = now + cfg.interval_s;
    }
    if (now >= observe_at) register_observation();
    send_pack();
    wake = next_read_at;
    if (!observe.in_flight && observe_at < wake) wake = observe_at;
    if (q_len && !post.in_flight && next_send_at < wake) wake = next_send_at;
    wake = (wake - mono()) * 1000.0;
    if (wake > 1000.0) wake = 1000.0;
    if (wake < 1.0) wake = 1.0;
    if (coap_io_process(ctx, (uint32_t)wake) < 0 && errno != EINTR) {
      say(0, "CoAP I/O failed: %s", strerror(errno));
      rc = 1;
      break;
    }
  }
  fprintf(stderr,
          "roost-coap-node: stopping: %lu readings sent in %lu packs; packs unsent %zu, dropped %lu, refused %lu; "
          "read errors %lu\n",
          readings_sent, packs_sent, q_len, packs_dropped, packs_refused, read_errors);
  coap_session_release(session);
  coap_free_context(ctx);
  coap_cleanup();
  free(queue);
  return rc;
}
