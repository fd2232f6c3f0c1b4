#include "reorder.h"

#include <algorithm>

namespace tcptrail {

namespace {

// After a burst, an empty heap gives back what it grew beyond this.
constexpr std::size_t kKeepEntries = 4096;

std::uint64_t ts_of(const Reorder::Item &item) {
  return std::visit([](const auto &ev) { return ev.hdr.ts_ns; }, item);
}

} // namespace

Reorder::Reorder(std::size_t cpus) : marks_(cpus, 0), online_(cpus, true) {}

void Reorder::push(const Item &item) {
  const std::uint64_t ts = ts_of(item);
  if (ts < released_)
    ++late_;
  heap_.push_back(Entry{ts, seq_++, item});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

void Reorder::mark(std::uint32_t cpu, std::uint64_t ts_ns) {
  if (cpu >= marks_.size())
    return;
  marks_[cpu] = std::max(marks_[cpu], ts_ns);
  online_[cpu] = true;
}

void Reorder::offline(std::uint32_t cpu) {
  if (cpu < online_.size())
    online_[cpu] = false;
}

std::uint64_t Reorder::watermark() const {
  std::uint64_t w = UINT64_MAX;
  for (std::size_t c = 0; c < marks_.size(); ++c)
    if (online_[c])
      w = std::min(w, marks_[c]);
  return w;
}

void Reorder::pop(Entry &out) {
  std::pop_heap(heap_.begin(), heap_.end(), later);
  out = std::move(heap_.back());
  heap_.pop_back();
}

void Reorder::shrink_if_idle() {
  if (heap_.empty() && heap_.capacity() > kKeepEntries)
    std::vector<Entry>().swap(heap_);
}

} // namespace tcptrail
