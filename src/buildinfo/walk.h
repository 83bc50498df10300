// The source walk (spec K4, R12): which sources a result depends on.
//
// Starting from a result vertex, CollectSources() visits the result itself
// (K4: BuildKit skipped it, W4) and then, depth-first in input order, every
// vertex reachable through inputs, each once. Every vertex may report one
// (identifier, pin) pair; the first pair seen for an identifier wins. It is
// independent of any graph type: the caller says how to get a vertex's
// inputs and its report, so the solver can run it on its own graph and tests
// on toy graphs. Local sources should simply report nothing (R10).
//
// Thread-safety: a pure function; the callbacks are called on the calling
// thread only.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "buildinfo/merge.h"

namespace kiln::buildinfo {

// Vertex: a copyable value with a strict weak order (pointer, id, ...).
// InputsFn: (const Vertex&) -> a range of Vertex, in input order.
// ReportFn: (const Vertex&) -> std::optional<std::pair<std::string, std::string>>
//           (identifier, pin), or nullopt for a vertex that is not a source.
template <typename Vertex, typename InputsFn, typename ReportFn>
SourcePins CollectSources(const Vertex& result, InputsFn&& inputs, ReportFn&& report) {
  SourcePins pins;
  std::set<Vertex> seen;
  std::vector<Vertex> stack{result};
  while (!stack.empty()) {
    Vertex v = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(v).second) continue;
    if (std::optional<std::pair<std::string, std::string>> r = report(v)) {
      pins.try_emplace(std::move(r->first), std::move(r->second));
    }
    std::vector<Vertex> in;
    for (const auto& i : inputs(v)) in.push_back(i);
    for (auto it = in.rbegin(); it != in.rend(); ++it) {
      if (seen.find(*it) == seen.end()) stack.push_back(*it);
    }
  }
  return pins;
}

}  // namespace kiln::buildinfo
