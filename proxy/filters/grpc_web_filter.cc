#include "proxy/filters/grpc_web_filter.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "proxy/codec/grpc_framing.h"
#include "proxy/stream/local_reply.h"

namespace turnout::proxy {

const GrpcStatsFilterConfig& GrpcWebStream::statsConfig() {
  static const GrpcStatsFilterConfig* const kEvery = [] {
    auto* c = new GrpcStatsFilterConfig();
    c->all_methods = true;
    return c;
  }();
  return *kEvery;
}
namespace {

constexpr std::string_view kGrpcWeb = "application/grpc-web";
constexpr std::string_view kGrpcWebProto = "application/grpc-web+proto";
constexpr std::string_view kGrpcWebText = "application/grpc-web-text";
constexpr std::string_view kGrpcWebTextProto = "application/grpc-web-text+proto";

// Envoy's response code details.
constexpr std::string_view kDetailsBadSize = "grpc_base_64_decode_failed_bad_size";
constexpr std::string_view kDetailsBadData = "grpc_base_64_decode_failed";

constexpr char kTrailersFlag = static_cast<char>(0x80);

bool isText(std::string_view content_type) {
  return content_type == kGrpcWebText || content_type == kGrpcWebTextProto;
}

// Envoy's hasProtoEncodedGrpcWebContentType: the media type (parameters
// dropped, trailing space trimmed), case-insensitively, is
// application/grpc-web+proto or application/grpc-web.
bool isProtoGrpcWebContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  auto equals = [media](std::string_view type) {
    return media.size() == type.size() &&
           std::equal(media.begin(), media.end(), type.begin(), [](char a, char b) {
             return absl::ascii_tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  return equals(kGrpcWebProto) || equals(kGrpcWeb);
}

}  // namespace

FilterHeadersStatus GrpcWebFilter::decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const {
  RequestHead& head = callbacks.requestHead();
  const std::string_view content_type = head.headers.get("content-type");
  // Envoy's isGrpcWebRequest: one of the four types exactly.
  if (content_type != kGrpcWeb && content_type != kGrpcWebProto && !isText(content_type)) {
    return FilterHeadersStatus::Continue;
  }
  const bool text_request = isText(content_type);
  const bool text_response = isText(head.headers.get("accept"));
  // The body's length changes (text) and HTTP/2 framing replaces it anyway.
  head.headers.remove("content-length");
  head.headers.set("content-type", "application/grpc");
  head.headers.set("te", "trailers");
  if (!head.headers.has("grpc-accept-encoding")) {
    head.headers.addLowercase("grpc-accept-encoding", "identity,deflate,gzip");
  }
  callbacks.startGrpcWeb(text_request, text_response);
  return FilterHeadersStatus::Continue;
}

bool GrpcWebStream::decodeRequestBody(std::string& body, bool end_stream) {
  if (!text_request_) return true;
  scratch_.clear();
  if (decoder_.decode(body, scratch_) != Base64GroupDecoder::Result::kOk) {
    details_ = kDetailsBadData;
    return false;
  }
  if (end_stream && decoder_.held() != 0) {
    // Padding is mandatory: the body ended inside a group.
    details_ = kDetailsBadSize;
    return false;
  }
  body.swap(scratch_);
  return true;
}

std::string_view GrpcWebStream::contentType() const {
  return text_response_ ? kGrpcWebTextProto : kGrpcWebProto;
}

bool GrpcWebStream::onResponseHeaders(ResponseHead& head, bool end_stream) {
  // Envoy's needsTransformationForNonProtoEncodedResponse: neither a gRPC
  // response (Grpc::Common::isGrpcResponseHeaders) nor a 200 gRPC-Web one.
  const std::string_view content_type = head.headers.get("content-type");
  const bool grpc = end_stream ? head.headers.has("grpc-status")
                               : head.status == 200 && isGrpcContentType(content_type);
  const bool grpc_web = head.status == 200 && isProtoGrpcWebContentType(content_type);
  head.headers.remove("content-length");
  head.headers.set("content-type", contentType());
  if (end_stream || grpc || grpc_web) return true;
  held_.emplace(head);
  return false;
}

void GrpcWebStream::holdData(std::span<const char> data) {
  const std::size_t room = kMaxHeldBody - held_body_.size();
  held_body_.append(data.data(), std::min(room, data.size()));
}

ResponseHead& GrpcWebStream::finishHeld() {
  ResponseHead& head = *held_;
  char status[12];
  const int n =
      std::snprintf(status, sizeof(status), "%d", static_cast<int>(httpToGrpcStatus(head.status)));
  head.headers.set("grpc-status", std::string_view(status, static_cast<std::size_t>(n)));
  head.headers.set("grpc-message", grpcPercentEncode(held_body_));
  head.headers.set("content-length", "0");
  std::string().swap(held_body_);
  return head;
}

std::span<const char> GrpcWebStream::encodeData(std::span<const char> data) {
  if (!text_response_) return data;
  scratch_.clear();
  base64Encode(data, scratch_);
  return std::span<const char>(scratch_.data(), scratch_.size());
}

std::span<const char> GrpcWebStream::encodeTrailers(const HeaderMap& trailers) {
  frame_.assign(5, '\0');
  trailers.forEach([this](std::string_view name, std::string_view value) {
    frame_.append(name);
    frame_.push_back(':');
    frame_.append(value);
    frame_.append("\r\n");
  });
  std::array<char, 5> prefix = grpcFramePrefix(frame_.size() - 5);
  prefix[0] = kTrailersFlag;
  frame_.replace(0, prefix.size(), prefix.data(), prefix.size());
  if (!text_response_) return std::span<const char>(frame_.data(), frame_.size());
  scratch_.clear();
  base64Encode(std::span<const char>(frame_.data(), frame_.size()), scratch_);
  return std::span<const char>(scratch_.data(), scratch_.size());
}

}  // namespace turnout::proxy
