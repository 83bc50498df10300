#include "util/no_space.h"

#include <cerrno>
#include <string>

namespace kiln {

bool IsNoSpace(int err) { return err == ENOSPC || err == EDQUOT; }

Status NoSpace(std::string_view path, std::string_view doing) {
  return Status::ResourceExhausted("no space left on device: " + std::string(path) + " (" +
                                   std::string(doing) + "); free space or run kiln prune");
}

Status NoSpaceFor(std::string_view what, std::string_view path) {
  std::string_view rest = what;
  if (rest.rfind("cannot ", 0) == 0) rest.remove_prefix(7);
  for (std::string_view tail : {" in", " into", " to", " at", " on", " of", " from"}) {
    if (rest.size() > tail.size() && rest.substr(rest.size() - tail.size()) == tail) {
      rest.remove_suffix(tail.size());
      break;
    }
  }
  const size_t space = rest.find(' ');
  const std::string verb(rest.substr(0, space));
  std::string doing;
  if (verb == "set" || verb == "cut" || verb == "swap" || verb == "stat") {
    doing = verb + verb.back() + "ing";
  } else if (verb.size() > 2 && verb.back() == 'e' && verb[verb.size() - 2] != 'e') {
    doing = verb.substr(0, verb.size() - 1) + "ing";
  } else if (!verb.empty()) {
    doing = verb + "ing";
  } else {
    doing = "writing";
  }
  if (space != std::string_view::npos) doing += rest.substr(space);
  return NoSpace(path, doing);
}

}  // namespace kiln
