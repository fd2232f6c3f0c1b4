// Escaping of strings a traced process controls (comm) for every format.
// Nothing a process puts in its name may move a terminal's cursor or break
// a JSON/CSV line.
#pragma once

#include <string_view>

#include <fmt/format.h>

#include "tcptrail/events.h"

namespace tcptrail {

using Buffer = fmt::memory_buffer;

// The comm bytes up to the first NUL (at most TT_COMM_LEN).
std::string_view comm_view(const char (&comm)[TT_COMM_LEN]);

// A JSON string literal, quotes included, valid whatever the input bytes.
void append_json_string(Buffer &out, std::string_view s);

// Printable for a terminal/table: C0/C1 controls, DEL, backslash and
// invalid UTF-8 become \xNN escapes; space stays.
void append_terminal_safe(Buffer &out, std::string_view s);

// One RFC 4180 CSV field (text: never a number), quoted when needed,
// control bytes escaped. A field starting with =, +, -, @, tab or CR is
// neutralised as OWASP advises for CSV injection: quoted, with a leading
// single quote, so that a spreadsheet shows it as text.
void append_csv_field(Buffer &out, std::string_view s);

} // namespace tcptrail
