// Hostile process names through every escaping function. A traced process
// chooses its comm: nothing it puts there may reach a terminal raw or break
// a JSON/CSV line.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "format/escape.h"

namespace {

using namespace std::string_literals;
using tcptrail::Buffer;

std::string json(std::string_view s) {
  Buffer out;
  tcptrail::append_json_string(out, s);
  return fmt::to_string(out);
}

std::string term(std::string_view s) {
  Buffer out;
  tcptrail::append_terminal_safe(out, s);
  return fmt::to_string(out);
}

std::string csv(std::string_view s) {
  Buffer out;
  tcptrail::append_csv_field(out, s);
  return fmt::to_string(out);
}

struct EscapeCase {
  const char *description;
  std::string input;
  std::string json;
  std::string terminal;
  std::string csv;
};

// clang-format off
const EscapeCase kCases[] = {
    {"plain", "curl", R"("curl")", "curl", "curl"},
    {"empty", "", R"("")", "", ""},
    {"space inside", "Web Content", R"("Web Content")", "Web Content",
     "Web Content"},
    {"double quote", R"(a"b)", R"("a\"b")", R"(a"b)", R"("a""b")"},
    {"backslash", R"(a\b)", R"("a\\b")", R"(a\\b)", R"(a\\b)"},
    {"backslash that looks like an escape", R"(\x1b)", R"("\\x1b")",
     R"(\\x1b)", R"(\\x1b)"},
    {"newline", "a\nb", R"("a\nb")", R"(a\x0ab)", R"(a\x0ab)"},
    {"carriage return", "a\rb", R"("a\rb")", R"(a\x0db)", R"(a\x0db)"},
    {"tab, backspace, form feed", "\t\b\f", R"("\t\b\f")", R"(\x09\x08\x0c)",
     R"("'\x09\x08\x0c")"},
    {"NUL inside the view", "a\0b"s, R"("a\u0000b")", R"(a\x00b)",
     R"(a\x00b)"},
    {"ESC[2J clear screen", "\x1b[2J", R"("\u001b[2J")", R"(\x1b[2J)",
     R"(\x1b[2J)"},
    {"OSC 0 title with BEL", "\x1b]0;pwned\x07", R"("\u001b]0;pwned\u0007")",
     R"(\x1b]0;pwned\x07)", R"(\x1b]0;pwned\x07)"},
    {"DEL", "a\x7f", R"("a\u007f")", R"(a\x7f)", R"(a\x7f)"},
    {"C1 CSI as UTF-8 (U+009B)", "\xc2\x9b" "2J", R"("\u009b2J")",
     R"(\xc2\x9b2J)", R"(\xc2\x9b2J)"},
    {"C1 first and last (U+0080, U+009F)", "\xc2\x80\xc2\x9f",
     R"("\u0080\u009f")", R"(\xc2\x80\xc2\x9f)", R"(\xc2\x80\xc2\x9f)"},
    {"raw 0x9b CSI byte", "\x9b" "2J", R"("\ufffd2J")", R"(\x9b2J)",
     R"(\x9b2J)"},
    {"U+00A0 is not C1", "\xc2\xa0", "\"\xc2\xa0\"", "\xc2\xa0", "\xc2\xa0"},
    {"valid UTF-8 passes", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7",
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7\"",
     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7",
     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7"},
    {"lone continuation byte", "a\x80z", R"("a\ufffdz")", R"(a\x80z)",
     R"(a\x80z)"},
    {"overlong slash C0 AF", "\xc0\xaf", R"("\ufffd\ufffd")", R"(\xc0\xaf)",
     R"(\xc0\xaf)"},
    {"overlong E0 80 AF", "\xe0\x80\xaf", R"("\ufffd\ufffd\ufffd")",
     R"(\xe0\x80\xaf)", R"(\xe0\x80\xaf)"},
    {"overlong NUL C0 80", "\xc0\x80", R"("\ufffd\ufffd")", R"(\xc0\x80)",
     R"(\xc0\x80)"},
    {"surrogate U+D800", "\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")",
     R"(\xed\xa0\x80)", R"(\xed\xa0\x80)"},
    {"above U+10FFFF", "\xf4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")",
     R"(\xf4\x90\x80\x80)", R"(\xf4\x90\x80\x80)"},
    {"F5 and FF never appear", "\xf5\xff", R"("\ufffd\ufffd")", R"(\xf5\xff)",
     R"(\xf5\xff)"},
    {"truncated 3-byte sequence at the end", "ab\xe2\x82", R"("ab\ufffd\ufffd")",
     R"(ab\xe2\x82)", R"(ab\xe2\x82)"},
    {"truncated sequence then ASCII", "\xe2\x82z", R"("\ufffd\ufffdz")",
     R"(\xe2\x82z)", R"(\xe2\x82z)"},
    {"comma", "a,b", R"("a,b")", "a,b", R"("a,b")"},
    {"leading space", " a", R"(" a")", " a", R"(" a")"},
    {"trailing space", "a ", R"("a ")", "a ", R"("a ")"},
    {"quote and newline", "\"\n", R"("\"\n")", R"("\x0a)", R"("""\x0a")"},
    {"comma and backslash", R"(,\)", R"(",\\")", R"(,\\)", R"(",\\")"},
    // CSV injection (OWASP): a formula's first character makes the field
    // text for a spreadsheet; elsewhere in the field it is harmless.
    {"formula =", "=cmd|'/C calc'!A0", R"("=cmd|'/C calc'!A0")",
     "=cmd|'/C calc'!A0", R"("'=cmd|'/C calc'!A0")"},
    {"formula +", "+1+2", R"("+1+2")", "+1+2", R"("'+1+2")"},
    {"formula -", "-2,3", R"("-2,3")", "-2,3", R"("'-2,3")"},
    {"formula @", "@SUM(A1)", R"x("@SUM(A1)")x", "@SUM(A1)",
     R"x("'@SUM(A1)")x"},
    {"formula CR", "\r=1", R"("\r=1")", R"(\x0d=1)", R"("'\x0d=1")"},
    {"formula character inside", "a=b-c", R"("a=b-c")", "a=b-c", "a=b-c"},
};
// clang-format on

TEST(EscapeTest, GoldenTable) {
  for (const auto &c : kCases) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(json(c.input), c.json);
    EXPECT_EQ(term(c.input), c.terminal);
    EXPECT_EQ(csv(c.input), c.csv);
  }
}

TEST(EscapeTest, JsonParsesBackToTheInputWhenValid) {
  for (const auto &c : kCases) {
    SCOPED_TRACE(c.description);
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(json(c.input)));
    ASSERT_TRUE(parsed.is_string());
    // Invalid bytes become U+FFFD; everything else round-trips.
    if (c.json.find("\\ufffd") == std::string::npos) {
      EXPECT_EQ(parsed.get<std::string>(), c.input);
    }
  }
}

TEST(EscapeTest, CommViewStopsAtNul) {
  const char comm[TT_COMM_LEN] = "nginx";
  EXPECT_EQ(tcptrail::comm_view(comm), "nginx");
  const char empty[TT_COMM_LEN] = {};
  EXPECT_EQ(tcptrail::comm_view(empty), "");
}

TEST(EscapeTest, CommViewOfSixteenBytesWithoutNul) {
  // The kernel NUL-terminates, but a record is untrusted input: a full
  // 16-byte comm must not be read past.
  struct {
    char comm[TT_COMM_LEN];
    char canary[4];
  } rec;
  std::memcpy(rec.comm, "0123456789abcdef", TT_COMM_LEN);
  std::memcpy(rec.canary, "XYZ", 4);
  const std::string_view v = tcptrail::comm_view(rec.comm);
  EXPECT_EQ(v.size(), 16u);
  EXPECT_EQ(v, "0123456789abcdef");
  EXPECT_EQ(json(v), R"("0123456789abcdef")");
}

// Whether `s` is valid UTF-8 free of C0 controls, DEL and C1 controls.
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f)
      return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size())
      return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const std::uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        (cp >= 0x80 && cp <= 0x9f))
      return false;
    i += n;
  }
  return true;
}

TEST(EscapeTest, RandomBytesAlwaysSafe) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> len_dist(0, 24);
  std::uniform_int_distribution<int> byte_dist(0, 255);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s(static_cast<std::size_t>(len_dist(rng)), '\0');
    for (char &ch : s)
      ch = static_cast<char>(byte_dist(rng));
    SCOPED_TRACE(testing::PrintToString(s));

    const std::string j = json(s);
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(j));
    ASSERT_TRUE(parsed.is_string());
    ASSERT_TRUE(printable_utf8(j));

    const std::string t = term(s);
    ASSERT_TRUE(printable_utf8(t));

    const std::string c = csv(s);
    ASSERT_TRUE(printable_utf8(c));
    // A quoted field has balanced quotes, an unquoted one none.
    if (!c.empty() && c.front() == '"') {
      ASSERT_EQ(c.back(), '"');
      const std::string inner = c.substr(1, c.size() - 2);
      for (std::size_t i = 0; i < inner.size(); ++i) {
        if (inner[i] == '"') {
          ASSERT_TRUE(i + 1 < inner.size() && inner[i + 1] == '"');
          ++i;
        }
      }
    } else {
      ASSERT_EQ(c.find_first_of(",\""), std::string::npos);
    }
  }
}

TEST(EscapeTest, AppendsWithoutClearing) {
  Buffer out;
  out.push_back('>');
  tcptrail::append_terminal_safe(out, "\x1b");
  tcptrail::append_json_string(out, "x");
  tcptrail::append_csv_field(out, "a,b");
  EXPECT_EQ(fmt::to_string(out), R"(>\x1b"x""a,b")");
}

} // namespace

// Bidi overrides and isolates are valid UTF-8 but reorder what a terminal
// shows ("evil\u202Etxt.exe"); line separators break a line visually.
TEST(EscapeTest, TerminalEscapesInvisibleFormatControls) {
  struct Case {
    const char *in;
    const char *table;
  };
  const Case cases[] = {
      {"a\u202Eb", "a\\xe2\\x80\\xaeb"},   // RIGHT-TO-LEFT OVERRIDE
      {"a\u2066b", "a\\xe2\\x81\\xa6b"},   // LEFT-TO-RIGHT ISOLATE
      {"a\u200Fb", "a\\xe2\\x80\\x8fb"},   // RIGHT-TO-LEFT MARK
      {"a\u2028b", "a\\xe2\\x80\\xa8b"},   // LINE SEPARATOR
      {"a\u2014b", "a\u2014b"},            // EM DASH: printable, kept
  };
  for (const Case &c : cases) {
    tcptrail::Buffer out;
    tcptrail::append_terminal_safe(out, c.in);
    EXPECT_EQ(fmt::to_string(out), c.table) << c.in;
  }
}
