#include "bench/turnout_bench/http1_session.h"

#include <array>
#include <cstring>

namespace turnout::bench {
namespace {

constexpr size_t kInitialBuffer = 16 * 1024;
// The codec rejects heads over 60 KiB, so the buffer never needs more than
// this to hold one unconsumed head plus a read.
constexpr size_t kMaxBuffer = 128 * 1024;

bool isEof(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

std::string_view errorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kRead: return "read";
    case ErrorKind::kWrite: return "write";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kParse: return "parse";
  }
  return "unknown";
}

template <typename Stream>
Http1Session<Stream>::Http1Session(asio::io_context& io, const Transport& transport)
    : io_(io), transport_(transport), buf_(kInitialBuffer) {}

template <typename Stream>
Http1Session<Stream>::~Http1Session() = default;

template <typename Stream>
void Http1Session<Stream>::close() {
  boost::system::error_code ignored;
  if (stream_) stream_->lowest_layer().close(ignored);
  deadline_ = Clock::time_point::max();
}

template <typename Stream>
void Http1Session<Stream>::expireIfPast(Clock::time_point now) {
  if (now >= deadline_ && isOpen()) {
    timed_out_ = true;
    close();
  }
}

template <typename Stream>
ErrorKind Http1Session<Stream>::failed(ErrorKind kind) {
  const ErrorKind k = timed_out_ ? ErrorKind::kTimeout : kind;
  close();
  return k;
}

template <typename Stream>
ExchangeResult Http1Session<Stream>::staleOrFailed(ErrorKind kind) {
  ExchangeResult r;
  // A keep-alive connection the server closed while idle fails before any
  // byte of the response arrives; a new connection gets the request again.
  // On a fresh connection the same failure is the server's answer.
  if (!timed_out_ && responses_ > 0) {
    close();
    r.retry = true;
  } else {
    r.error = failed(kind);
  }
  return r;
}

template <typename Stream>
Awaitable<ErrorKind> Http1Session<Stream>::connect(Clock::time_point deadline) {
  close();
  timed_out_ = false;
  responses_ = 0;
  begin_ = end_ = 0;
  codec_.emplace(static_cast<proxy::ResponseDecoderCallbacks&>(*this));
  deadline_ = deadline;
  const ErrorKind err = co_await openStream(&io_, &stream_, &transport_, nullptr);
  deadline_ = Clock::time_point::max();
  if (err != ErrorKind::kNone) {
    timed_out_ = false;  // a connect over the deadline is a connect error
    co_return failed(ErrorKind::kConnect);
  }
  co_return ErrorKind::kNone;
}

template <typename Stream>
bool Http1Session<Stream>::decodeBuffered() {
  if (end_ == begin_) return true;
  auto used = codec_->decode(std::span<const char>(buf_.data() + begin_, end_ - begin_));
  if (!used.ok()) return false;
  begin_ += *used;
  if (begin_ == end_) begin_ = end_ = 0;
  return true;
}

template <typename Stream>
Awaitable<ExchangeResult> Http1Session<Stream>::exchange(const RequestTemplate& request,
                                                         Clock::time_point deadline) {
  ExchangeResult r;
  complete_ = false;
  status_ = 0;
  deadline_ = deadline;
  codec_->expectResponse(request.method);
  boost::system::error_code ec;
  const std::array<asio::const_buffer, 2> out = {
      asio::buffer(request.http1_head), asio::buffer(request.body.data(), request.body.size())};
  co_await asio::async_write(*stream_, out, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    r = staleOrFailed(ErrorKind::kWrite);
    co_return r;
  }
  // Bytes left from an earlier read (a server that pipelines ahead) first.
  if (!decodeBuffered()) {
    r.error = failed(ErrorKind::kParse);
    co_return r;
  }
  while (!complete_) {
    if (end_ == buf_.size()) {
      // A partial head fills the buffer: make room at the front, or grow.
      if (begin_ > 0) {
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      } else if (buf_.size() < kMaxBuffer) {
        buf_.resize(buf_.size() * 2);
      } else {
        r.error = failed(ErrorKind::kParse);
        co_return r;
      }
    }
    const size_t n =
        co_await stream_->async_read_some(asio::buffer(buf_.data() + end_, buf_.size() - end_),
                                          asio::redirect_error(use_awaitable, ec));
    r.bytes_read += n;
    end_ += n;
    // TLS peers that close without close_notify read as stream_truncated.
    if (isEof(ec) && r.bytes_read > 0) {
      // A close-delimited body ends here; anything else was cut short.
      if (!decodeBuffered() || !codec_->onEof().ok() || !complete_) {
        r.error = failed(ErrorKind::kRead);
        co_return r;
      }
      break;
    }
    if (ec) {
      const uint64_t n = r.bytes_read;
      r = n == 0 ? staleOrFailed(ErrorKind::kRead) : ExchangeResult{failed(ErrorKind::kRead), 0, n};
      co_return r;
    }
    if (!decodeBuffered()) {
      r.error = failed(ErrorKind::kParse);
      co_return r;
    }
  }
  deadline_ = Clock::time_point::max();
  r.status = status_;
  ++responses_;
  if (!codec_->canReuse()) close();
  co_return r;
}

template class Http1Session<TcpStream>;
template class Http1Session<TlsStream>;

}  // namespace turnout::bench
