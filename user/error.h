// tcptrail::Error: a failed step, with an optional hint for the user.
#pragma once

#include <stdexcept>
#include <string>

namespace tcptrail {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string &msg, std::string hint = {},
                 int exit_code = 1)
      : std::runtime_error(msg), hint_(std::move(hint)),
        exit_code_(exit_code) {}
  const std::string &hint() const { return hint_; }
  int exit_code() const { return exit_code_; }

private:
  std::string hint_;
  int exit_code_;
};

} // namespace tcptrail
