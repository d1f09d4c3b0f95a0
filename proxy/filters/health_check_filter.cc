#include "proxy/filters/health_check_filter.h"

#include <string>

namespace turnout::proxy {

FilterHeadersStatus HealthCheckFilter::decodeHeaders(StreamDecoderFilterCallbacks& cb) const {
  routing::RequestView view = cb.requestView();
  std::string scratch;
  routing::MatchInput in;
  in.view = &view;
  in.path = view.path();
  in.path_only = view.path().substr(0, view.path().find_first_of("?#"));
  in.scratch = &scratch;
  for (const auto& m : headers_) {
    if (!m.matches(in)) return FilterHeadersStatus::Continue;
  }
  const bool failed = cb.healthCheckFailed();
  if (failed) cb.setResponseFlag(access_log::ResponseFlag::FailedLocalHealthCheck);
  cb.localReply(failed ? 503 : 200, "", "");
  return FilterHeadersStatus::StopIteration;
}

}  // namespace turnout::proxy
