#include "format/escape.h"

#include <cstddef>
#include <cstring>

namespace tcptrail {

namespace {

constexpr char kHex[] = "0123456789abcdef";

unsigned char byte_at(std::string_view s, std::size_t i) {
  return static_cast<unsigned char>(s[i]);
}

bool in_range(std::string_view s, std::size_t i, unsigned char lo,
              unsigned char hi) {
  return i < s.size() && byte_at(s, i) >= lo && byte_at(s, i) <= hi;
}

// Length of the well-formed UTF-8 sequence that starts at s[i] (Unicode
// Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or 0 when
// s[i] does not start one. s[i] must be >= 0x80.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const unsigned char c = byte_at(s, i);
  if (c >= 0xc2 && c <= 0xdf)
    return in_range(s, i + 1, 0x80, 0xbf) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
    const unsigned char hi = c == 0xed ? 0x9f : 0xbf;
    return in_range(s, i + 1, lo, hi) && in_range(s, i + 2, 0x80, 0xbf) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
    return in_range(s, i + 1, lo, hi) && in_range(s, i + 2, 0x80, 0xbf) &&
                   in_range(s, i + 3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  return 0;
}

// U+0080..U+009F (C1 controls; U+009B is CSI) encode as C2 80..C2 9F.
bool is_c1(std::string_view s, std::size_t i, std::size_t len) {
  return len == 2 && byte_at(s, i) == 0xc2 && byte_at(s, i + 1) <= 0x9f;
}

// Invisible format controls that reorder or hide text on a terminal without
// being controls: bidi marks, embeddings, overrides and isolates (U+200E,
// U+200F, U+202A..U+202E, U+2066..U+2069), and line/paragraph separators
// (U+2028, U+2029). All encode as E2 80 xx or E2 81 xx.
bool is_format_control(std::string_view s, std::size_t i, std::size_t len) {
  if (len != 3 || byte_at(s, i) != 0xe2)
    return false;
  const unsigned char b1 = byte_at(s, i + 1), b2 = byte_at(s, i + 2);
  if (b1 == 0x80)
    return b2 == 0x8e || b2 == 0x8f || (b2 >= 0xa8 && b2 <= 0xae);
  return b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9;
}

void append_lit(Buffer &out, std::string_view lit) {
  out.append(lit.data(), lit.data() + lit.size());
}

void append_hex_escape(Buffer &out, unsigned char c) {
  const char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
  out.append(esc, esc + 4);
}

void append_json_u00(Buffer &out, unsigned char c) {
  const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
  out.append(esc, esc + 6);
}

// Shared by the table and CSV: printable ASCII and valid non-control UTF-8
// are copied in runs; everything else becomes \xNN (backslash: \\). With
// `double_quotes`, '"' is doubled (for a quoted CSV field).
void append_safe(Buffer &out, std::string_view s, bool double_quotes) {
  std::size_t run = 0;
  std::size_t i = 0;
  auto flush = [&] { out.append(s.data() + run, s.data() + i); };
  while (i < s.size()) {
    const unsigned char c = byte_at(s, i);
    if (c >= 0x20 && c < 0x7f && c != '\\' && !(double_quotes && c == '"')) {
      ++i;
      continue;
    }
    std::size_t len = 1;
    if (c >= 0x80) {
      len = utf8_length(s, i);
      if (len > 0 && !is_c1(s, i, len) && !is_format_control(s, i, len)) {
        i += len;
        continue;
      }
      len = len == 0 ? 1 : len; // invalid: escape this byte only
    }
    flush();
    if (c == '\\') {
      append_lit(out, "\\\\");
    } else if (c == '"') {
      append_lit(out, "\"\"");
    } else {
      for (std::size_t k = 0; k < len; ++k)
        append_hex_escape(out, byte_at(s, i + k));
    }
    i += len;
    run = i;
  }
  flush();
}

} // namespace

std::string_view comm_view(const char (&comm)[TT_COMM_LEN]) {
  return {comm, strnlen(comm, TT_COMM_LEN)};
}

void append_json_string(Buffer &out, std::string_view s) {
  out.push_back('"');
  std::size_t run = 0;
  std::size_t i = 0;
  auto flush = [&] { out.append(s.data() + run, s.data() + i); };
  while (i < s.size()) {
    const unsigned char c = byte_at(s, i);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t len = utf8_length(s, i);
      if (len > 0 && !is_c1(s, i, len) && !is_format_control(s, i, len)) {
        i += len;
        continue;
      }
      flush();
      if (len == 0) {
        append_lit(out, "\\ufffd");
        i += 1;
      } else {
        append_json_u00(out, byte_at(s, i + 1)); // C1: U+0080..U+009F
        i += 2;
      }
      run = i;
      continue;
    }
    flush();
    switch (c) {
    case '"':
      append_lit(out, "\\\"");
      break;
    case '\\':
      append_lit(out, "\\\\");
      break;
    case '\b':
      append_lit(out, "\\b");
      break;
    case '\f':
      append_lit(out, "\\f");
      break;
    case '\n':
      append_lit(out, "\\n");
      break;
    case '\r':
      append_lit(out, "\\r");
      break;
    case '\t':
      append_lit(out, "\\t");
      break;
    default: // other C0 controls and DEL
      append_json_u00(out, c);
      break;
    }
    ++i;
    run = i;
  }
  flush();
  out.push_back('"');
}

void append_terminal_safe(Buffer &out, std::string_view s) {
  append_safe(out, s, false);
}

void append_csv_field(Buffer &out, std::string_view s) {
  // A field a spreadsheet would take for a formula (a process can name
  // itself "=HYPERLINK(...)"): OWASP's advice, a leading single quote inside
  // a quoted field. Tested on the raw first byte, so that a tab or CR,
  // escaped below, is neutralised too.
  const bool formula =
      !s.empty() && std::string_view("=+-@\t\r").find(s.front()) !=
                        std::string_view::npos;
  // CR and LF never reach the output raw (they are escaped), so only these
  // need quoting; escapes never add a comma, quote or space.
  const bool quote = formula ||
                     s.find_first_of(",\"") != std::string_view::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) {
    append_safe(out, s, false);
    return;
  }
  out.push_back('"');
  if (formula)
    out.push_back('\'');
  append_safe(out, s, true);
  out.push_back('"');
}

} // namespace tcptrail
