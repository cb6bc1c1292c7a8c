/* Unit test: the SenML CBOR encoder writes exactly the bytes in the shared vectors
 * (tests/vectors/coap-node/packs.txt; tests/firmware/test_coap_node_vectors.py decodes the same
 * bytes with the gateway's decoder), and the settings parser takes and refuses what it should.
 * `test_node --print FILE` prints each vector's bytes as this encoder writes them. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "senml.h"

#define MAX_READINGS 16

static int failures;

static void check(int ok, const char *what) {
  if (!ok) {
    failures++;
    printf("FAIL: %s\n", what);
  }
}

typedef struct {
  char name[64], node[80], hex[2100];
  int has_time;
  double time;
  char names[MAX_READINGS][65], units[MAX_READINGS][17];
  senml_reading readings[MAX_READINGS];
  size_t n;
} vector;

static void hex(const uint8_t *b, size_t n, char *out) {
  size_t i;
  for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
  out[2 * n] = '\0';
}

static int run_vector(vector *v, int print) {
  uint8_t buf[1024];
  char got[2100];
  size_t len = senml_pack(buf, sizeof buf, v->node, v->has_time, v->time, v->readings, v->n);
  hex(buf, len, got);
  if (print) {
    printf("%s hex %s\n", v->name, got);
    return 0;
  }
  if (len == 0 || strcmp(got, v->hex) != 0) {
    printf("FAIL: vector %s\n  want %s\n  got  %s\n", v->name, v->hex, got);
    return 1;
  }
  /* a buffer one byte short is refused whole, never cut */
  if (senml_pack(buf, len - 1, v->node, v->has_time, v->time, v->readings, v->n) != 0) {
    printf("FAIL: vector %s fits in %zu bytes\n", v->name, len - 1);
    return 1;
  }
  return 0;
}

static int vectors(const char *path, int print) {
  char line[2300];
  vector v;
  int count = 0, bad = 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    printf("FAIL: cannot read %s\n", path);
    return -1;
  }
  memset(&v, 0, sizeof v);
  while (fgets(line, sizeof line, f) != NULL) {
    char word[16], a[80], b[32], c[40];
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '#' || line[0] == '\0') continue;
    if (sscanf(line, "%15s", word) != 1) continue;
    if (strcmp(word, "vector") == 0) {
      memset(&v, 0, sizeof v);
      sscanf(line, "vector %63s", v.name);
    } else if (strcmp(word, "node") == 0) {
      sscanf(line, "node %79s", v.node);
    } else if (strcmp(word, "time") == 0) {
      sscanf(line, "time %39s", c);
      v.has_time = strcmp(c, "-") != 0;
      v.time = v.has_time ? strtod(c, NULL) : 0;
    } else if (strcmp(word, "reading") == 0 && v.n < MAX_READINGS) {
      if (sscanf(line, "reading %64s %16s %39s", a, b, c) != 3) {
        printf("FAIL: bad line in %s: %s\n", path, line);
        bad++;
        continue;
      }
      strcpy(v.names[v.n], a);
      strcpy(v.units[v.n], b);
      v.readings[v.n].name = v.names[v.n];
      v.readings[v.n].unit = strcmp(b, "-") == 0 ? NULL : v.units[v.n];
      v.readings[v.n].value = strtod(c, NULL);
      v.n++;
    } else if (strcmp(word, "hex") == 0) {
      sscanf(line, "hex %2099s", v.hex);
      bad += run_vector(&v, print);
      count++;
    }
  }
  fclose(f);
  if (print) return 0;
  if (count < 5) {
    printf("FAIL: only %d vectors in %s\n", count, path);
    bad++;
  }
  printf("%d vectors from %s\n", count, path);
  return bad;
}

static void settings(void) {
  config c;
  char err[300];
  config_defaults(&c);
  check(config_check(&c, err, sizeof err) != 0 && strstr(err, "node") != NULL, "a node id is required");
  check(config_set(&c, "node", "kitchen-pi", err, sizeof err) == 0, "node id");
  check(config_set(&c, "source", "temperature unit=Cel scale=0.001 file=/sys/class/thermal/thermal_zone0/temp",
                   err, sizeof err) == 0,
        "file source");
  check(c.n_sources == 1 && c.sources[0].kind == SOURCE_FILE && c.sources[0].scale == 0.001 &&
            strcmp(c.sources[0].unit, "Cel") == 0 && strcmp(c.sources[0].arg, "/sys/class/thermal/thermal_zone0/temp") == 0,
        "file source fields");
  check(config_set(&c, "source", "load offset=1 command=cut -d' ' -f1 /proc/loadavg", err, sizeof err) == 0,
        "command source");
  check(c.sources[1].kind == SOURCE_COMMAND && strcmp(c.sources[1].arg, "cut -d' ' -f1 /proc/loadavg") == 0 &&
            c.sources[1].offset == 1.0,
        "a command takes the rest of the line");
  check(config_set(&c, "source", "test value=20 step=0.5", err, sizeof err) == 0 && c.sources[2].value == 20 &&
            c.sources[2].step == 0.5,
        "value source");
  check(config_set(&c, "output", "led file=/sys/class/leds/led0/brightness", err, sizeof err) == 0 &&
            c.n_outputs == 1 && c.outputs[0].kind == OUTPUT_FILE,
        "file output");
  check(config_check(&c, err, sizeof err) == 0, "a complete config passes");
  check(config_set(&c, "source", "temp:x value=1", err, sizeof err) != 0 && strstr(err, "temp:x") != NULL,
        "a metric with ':' is refused");
  check(config_set(&c, "source", "temp", err, sizeof err) != 0 && strstr(err, "file=") != NULL,
        "a source needs a kind");
  check(config_set(&c, "source", "temp value=abc", err, sizeof err) != 0 && strstr(err, "abc") != NULL,
        "a value must be a number");
  check(config_set(&c, "source", "temp colour=red value=1", err, sizeof err) != 0 && strstr(err, "colour") != NULL,
        "an unknown source setting is named");
  check(config_set(&c, "interval", "0", err, sizeof err) != 0 && strstr(err, "interval") != NULL,
        "interval 0 is refused");
  check(config_set(&c, "interval", "5", err, sizeof err) == 0 && c.interval_s == 5, "interval 5");
  check(config_set(&c, "colour", "red", err, sizeof err) != 0 && strstr(err, "colour") != NULL,
        "an unknown setting is named");
  check(config_set(&c, "node", "/dev/ttyUSB0", err, sizeof err) == 0 && config_check(&c, err, sizeof err) != 0,
        "a /dev path is not a node id");
  check(senml_valid_node("00:12:4b:00:1c:a1:b2:c3") && !senml_valid_node("") && !senml_valid_node("a b"),
        "node id rules");
  check(senml_valid_metric("rx/bytes") && !senml_valid_metric("-x") && !senml_valid_metric("a:b"), "metric rules");
}

int main(int argc, char **argv) {
  int print = argc > 2 && strcmp(argv[1], "--print") == 0;
  const char *path = argc > 1 ? argv[argc - 1] : "../../tests/vectors/coap-node/packs.txt";
  int bad = vectors(path, print);
  if (print) return 0;
  settings();
  if (bad != 0 || failures != 0) {
    printf("test_node: %d failures\n", bad + failures);
    return 1;
  }
  printf("test_node: all passed\n");
  return 0;
}
