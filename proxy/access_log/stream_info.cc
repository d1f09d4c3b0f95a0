#include "proxy/access_log/stream_info.h"

#include <array>

namespace turnout::proxy::access_log {
namespace {

constexpr std::array<std::string_view, static_cast<size_t>(ResponseFlag::kCount)> kShortNames = {
    "LH",  "UH",   "UT",   "LR", "UR", "UF",  "UC", "UO",  "NR",    "DI",
    "FI",  "RL",   "UAEX", "RLSE", "DC", "URX", "SI", "IH",  "DPE",   "UMSDR",
    "RFCF", "NFCF", "DT",  "UPE", "NC", "OM",  "DF", "DO",  "DR"};

}  // namespace

std::string_view responseFlagShortName(ResponseFlag flag) {
  const auto i = static_cast<size_t>(flag);
  return i < kShortNames.size() ? kShortNames[i] : std::string_view("-");
}

std::string ResponseFlags::toShortString() const {
  if (bits_ == 0) return "-";
  std::string out;
  for (size_t i = 0; i < kShortNames.size(); ++i) {
    if ((bits_ & (1u << i)) == 0) continue;
    if (!out.empty()) out += ',';
    out += kShortNames[i];
  }
  return out;
}

}  // namespace turnout::proxy::access_log
