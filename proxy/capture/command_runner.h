#pragma once

// Runs a program to completion: the seam between `turnout iptables` and the
// iptables-save / iptables-restore it drives. Tests pass a fake.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace turnout::proxy::capture {

struct CommandResult {
  bool started = false;  // false: the program was not found or could not be run
  int exit_code = -1;    // the exit status; 128 + N when killed by signal N
  std::string out;
  std::string err;       // stderr, or why it did not start
};

// argv[0] is a program name looked up in PATH, then in /usr/sbin, /sbin (an init
// container's PATH may lack them); `input` is written to its stdin.
using CommandRunner =
    std::function<CommandResult(const std::vector<std::string>& argv, std::string_view input)>;

// Runs the program for real: fork/exec, stdin, stdout and stderr through pipes,
// blocking until it exits. Not for the data path.
CommandResult runCommand(const std::vector<std::string>& argv, std::string_view input);

}  // namespace turnout::proxy::capture
