#include "image/member_layout.h"

#include <algorithm>

namespace kiln::image {

std::optional<std::string> MemberLayout::GetUnknown(std::string_view key) const {
  for (const auto& m : unknown_) {
    if (m.key == key) return m.value;
  }
  return std::nullopt;
}

void MemberLayout::SetUnknown(std::string key, std::string raw_json) {
  for (auto& m : unknown_) {
    if (m.key == key) {
      m.value = std::move(raw_json);
      return;
    }
  }
  if (Find(key) == nullptr) order_.push_back({key, ""});
  unknown_.push_back({std::move(key), std::move(raw_json)});
}

bool MemberLayout::RemoveUnknown(std::string_view key) {
  auto it = std::find_if(unknown_.begin(), unknown_.end(),
                         [&](const util::RawMember& m) { return m.key == key; });
  if (it == unknown_.end()) return false;
  unknown_.erase(it);
  std::erase_if(order_, [&](const Entry& e) { return e.key == key; });
  return true;
}

const MemberLayout::Entry* MemberLayout::Find(std::string_view key) const {
  for (const auto& e : order_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

void MemberLayout::AddParsedMember(std::string key, std::string empty_literal) {
  order_.push_back({std::move(key), std::move(empty_literal)});
}

void MemberLayout::Clear() {
  order_.clear();
  unknown_.clear();
}

}  // namespace kiln::image
