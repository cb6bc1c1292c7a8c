/* SenML CBOR packs; see senml.h. */
#include "senml.h"

#include <string.h>

#include "cbor.h"

enum { LABEL_BN = -2, LABEL_BT = -3, LABEL_N = 0, LABEL_U = 1, LABEL_V = 2 };

size_t senml_pack(uint8_t *buf, size_t cap, const char *node, int has_time, double base_time,
                  const senml_reading *readings, size_t n) {
  char base_name[SENML_MAX_NAME + 2];
  cbor_writer w;
  size_t i;
  if (strlen(node) > SENML_MAX_NAME) return 0;
  strcpy(base_name, node);
  strcat(base_name, ":");
  cbor_init(&w, buf, cap);
  cbor_array(&w, n);
  for (i = 0; i < n; i++) {
    const senml_reading *r = &readings[i];
    int first = i == 0;
    cbor_map(&w, 2 + (r->unit != NULL) + (first ? 1 + (has_time != 0) : 0));
    if (first) {
      cbor_int(&w, LABEL_BN);
      cbor_text(&w, base_name);
      if (has_time) {
        cbor_int(&w, LABEL_BT);
        cbor_number(&w, base_time);
      }
    }
    cbor_int(&w, LABEL_N);
    cbor_text(&w, r->name);
    if (r->unit != NULL) {
      cbor_int(&w, LABEL_U);
      cbor_text(&w, r->unit);
    }
    cbor_int(&w, LABEL_V);
    cbor_number(&w, r->value);
  }
  return cbor_ok(&w) ? w.len : 0;
}

static int name_char(char c, int colon) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '/' || c == '_' || (colon && c == ':');
}

static int valid(const char *s, int colon) {
  size_t i, n = strlen(s);
  if (n == 0 || n > SENML_MAX_NAME) return 0;
  if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return 0;
  for (i = 0; i < n; i++)
    if (!name_char(s[i], colon)) return 0;
  return 1;
}

int senml_valid_node(const char *node) { return valid(node, 1) && node[strlen(node) - 1] != ':'; }

int senml_valid_metric(const char *metric) { return valid(metric, 0); }
