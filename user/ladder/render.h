// Renderers of ladder diagrams: terminal text (Unicode box drawing or
// ASCII, optional colour), SVG, Mermaid sequenceDiagram and JSON Lines.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/escape.h"
#include "ladder/model.h"

namespace tcptrail::ladder {

enum class LadderFormat { Text, Svg, Mermaid, Json };

struct RenderOptions {
  bool raw_seq = false;   // raw seq/ack (like tcpdump -S), not relative
  bool ascii = false;     // text: ASCII only
  bool color = false;     // text: ANSI colour
  std::uint64_t lost = 0; // records lost while tracing (said in the output)
};

// "SYN,ACK seq=0 ack=1", "data seq=1 ack=1 len=10", "RST,ACK ack=1".
std::string segment_label(const Connection &c, const Segment &s, bool raw);
// "ESTABLISHED 0.795 ms", "(TIME_WAIT)", "CLOSE_WAIT >= 30.0 s".
std::string mark_label(const Mark &m, bool ascii);
// 85 us, 0.795 ms, 43.7 ms, 1.20 s.
std::string format_duration(std::uint64_t ns, bool ascii);
// "198.18.0.1:49564", "[2001:db8::1]:45192".
std::string endpoint(const End &e);
// "python3 pid 14647" (the owner, made printable), "" when unknown.
std::string owner(const End &e);
// Only printable ASCII: anything else (a hostile comm) becomes '?'.
std::string printable(std::string_view s);

void render_text(Buffer &out, const std::vector<Connection> &conns,
                 const RenderOptions &opts);
void render_svg(Buffer &out, const std::vector<Connection> &conns,
                const RenderOptions &opts);
void render_mermaid(Buffer &out, const std::vector<Connection> &conns,
                    const RenderOptions &opts);
void render_json(Buffer &out, const std::vector<Connection> &conns,
                 const RenderOptions &opts);

void render(Buffer &out, LadderFormat format,
            const std::vector<Connection> &conns, const RenderOptions &opts);

} // namespace tcptrail::ladder
