// What every Pi0 program's main() does: parse the arguments, answer --help and --version, and
// exit 2 with the usage hint on a bad flag; otherwise run.
#pragma once

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0 {

// `Options` has `help` and `version` flags; `parse` returns Result<Options>; `usage` the help
// text; `run` the exit status.
template <class Parse, class Usage, class Run>
int programMain(std::string_view name, std::string_view version, int argc, char** argv, Parse parse,
                Usage usage, Run run) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto options = parse(args);
  if (!options) {
    const std::string program(name);
    std::fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", program.c_str(),
                 options.error().message.c_str(), program.c_str());
    return 2;
  }
  if (options->help) {
    std::cout << usage();
    return 0;
  }
  if (options->version) {
    std::cout << name << " " << version << "\n";
    return 0;
  }
  return run(*options);
}

}  // namespace pi0
