#include "bench/turnout_bench/http2_session.h"

#include <algorithm>
#include <cstdio>
#include <exception>

namespace turnout::bench {
namespace {

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;

}  // namespace

// --- Http2Stream ----------------------------------------------------------------

void Http2Stream::onData(std::span<const char> data, bool) {
  // The body is dropped here, so it is acknowledged at once.
  if (codec != nullptr) codec->consumed(data.size());
}

void Http2Stream::onMessageComplete() { state.complete(this); }

void Http2Stream::onReset(proxy::StreamResetReason reason) {
  if (proxy::isRefusedStream(reason)) {
    refused = true;
  } else if (reason == proxy::StreamResetReason::kProtocolError) {
    error = ErrorKind::kParse;
  } else {
    error = ErrorKind::kRead;
  }
  state.complete(this);
}

// --- Http2ClientState -------------------------------------------------------------

Http2ClientState::~Http2ClientState() { failAll(ErrorKind::kRead); }

bool Http2ClientState::start() {
  failAll(ErrorKind::kRead);
  codec_ = std::make_unique<proxy::http2::ClientCodec>(*this);
  return codec_->status().ok();
}

void Http2ClientState::failAll(ErrorKind kind) {
  if (codec_ == nullptr) return;
  failing_ = kind;
  codec_->onEof();  // every stream in flight is reset, and completes below
  for (size_t i = active_.size(); i > 0; --i) complete(active_[i - 1]);
  failing_.reset();
  codec_.reset();
}

const proxy::RequestHead& Http2ClientState::headFor(const RequestTemplate& request) {
  auto [it, inserted] = heads_.try_emplace(&request);
  proxy::RequestHead& head = it->second;
  if (inserted) {
    head.method = request.method;
    head.scheme = request.scheme;
    head.authority = request.authority;
    head.path = request.path;
    for (const auto& [name, value] : request.headers) head.headers.add(name, value);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      head.content_length = request.body.size();
    }
  }
  return head;
}

Http2Stream* Http2ClientState::submit(const RequestTemplate& request, Clock::time_point deadline) {
  if (codec_ == nullptr) return nullptr;
  if (free_.empty()) {
    pool_.push_back(std::make_unique<Http2Stream>(io_, *this));
    free_.push_back(pool_.back().get());
  }
  Http2Stream* s = free_.back();
  s->deadline = deadline;
  s->status = 0;
  s->bytes = 0;
  s->error = ErrorKind::kNone;
  s->closed = false;
  s->refused = false;
  s->codec = codec_->newStream(*s);
  if (s->codec == nullptr) return nullptr;
  if (!s->codec->encodeHeaders(headFor(request), request.body.empty()).ok()) {
    s->codec.reset();
    return nullptr;
  }
  if (!request.body.empty()) s->codec->encodeData(request.body, true);
  free_.pop_back();
  active_.push_back(s);
  return s;
}

bool Http2ClientState::receive(const char* data, size_t n) {
  return codec_ != nullptr && codec_->dispatch(std::span<const char>(data, n)).ok();
}

bool Http2ClientState::takeOutput(std::string& out, size_t limit) {
  return codec_ != nullptr && codec_->drainOutput(out, limit).ok();
}

bool Http2ClientState::expire(Clock::time_point now) {
  bool reset = false;
  for (size_t i = active_.size(); i > 0; --i) {
    Http2Stream* s = active_[i - 1];
    if (now < s->deadline) continue;
    s->codec->resetStream(proxy::StreamResetReason::kLocalReset);
    s->error = ErrorKind::kTimeout;
    complete(s);
    reset = true;
  }
  return reset;
}

void Http2ClientState::complete(Http2Stream* s) {
  const auto it = std::find(active_.begin(), active_.end(), s);
  if (it == active_.end()) return;
  *it = active_.back();
  active_.pop_back();
  if (failing_) {
    s->error = *failing_;
    s->refused = false;
  }
  s->bytes = s->codec->wireBytesReceived();
  s->codec.reset();
  s->closed = true;
  s->done.cancel();
}

// --- Http2Session ---------------------------------------------------------------

template <typename Stream>
Http2Session<Stream>::Http2Session(asio::io_context& io, const Transport& transport)
    : io_(io), transport_(transport), state_(io), rbuf_(kReadBuffer) {}

template <typename Stream>
Http2Session<Stream>::~Http2Session() {
  fail(ErrorKind::kRead);
}

template <typename Stream>
void Http2Session<Stream>::closeSocket() {
  boost::system::error_code ignored;
  if (stream_) stream_->lowest_layer().close(ignored);
}

template <typename Stream>
void Http2Session<Stream>::close() {
  fail(ErrorKind::kRead);
}

template <typename Stream>
void Http2Session<Stream>::fail(ErrorKind kind) {
  ++generation_;  // the reader of this connection stops
  closeSocket();
  state_.failAll(kind);
}

template <typename Stream>
void Http2Session<Stream>::expireIfPast(Clock::time_point now) {
  if (now >= connect_deadline_) {
    closeSocket();  // fails the connect or handshake in progress
    return;
  }
  if (state_.expire(now)) {
    asio::co_spawn(io_, flush(), [](std::exception_ptr e) {
      if (e) std::fprintf(stderr, "turnout-bench: h2 flush failed\n");
    });
  }
}

template <typename Stream>
Awaitable<ErrorKind> Http2Session<Stream>::connect(Clock::time_point deadline) {
  fail(ErrorKind::kRead);
  connect_deadline_ = deadline;
  const ErrorKind err = co_await openStream(&io_, &stream_, &transport_, nullptr);
  connect_deadline_ = Clock::time_point::max();
  if (err != ErrorKind::kNone || !state_.start()) {
    fail(ErrorKind::kConnect);
    co_return ErrorKind::kConnect;
  }
  asio::co_spawn(io_, readLoop(generation_), [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "turnout-bench: h2 reader failed\n");
  });
  co_await flush();
  co_return isOpen() ? ErrorKind::kNone : ErrorKind::kConnect;
}

template <typename Stream>
Awaitable<void> Http2Session<Stream>::readLoop(uint64_t generation) {
  boost::system::error_code ec;
  while (generation == generation_) {
    const size_t n = co_await stream_->async_read_some(asio::buffer(rbuf_),
                                                       asio::redirect_error(use_awaitable, ec));
    if (generation != generation_) co_return;
    if (ec) {
      fail(ErrorKind::kRead);
      co_return;
    }
    if (!state_.receive(rbuf_.data(), n)) {
      fail(ErrorKind::kParse);
      co_return;
    }
    co_await flush();
  }
}

template <typename Stream>
Awaitable<void> Http2Session<Stream>::flush() {
  if (writing_) co_return;
  writing_ = true;
  boost::system::error_code ec;
  while (state_.live()) {
    wbuf_.clear();
    if (!state_.takeOutput(wbuf_, kWriteBatch)) {
      writing_ = false;
      fail(ErrorKind::kParse);
      co_return;
    }
    if (wbuf_.empty()) break;
    const uint64_t generation = generation_;
    co_await asio::async_write(*stream_, asio::buffer(wbuf_),
                               asio::redirect_error(use_awaitable, ec));
    if (generation != generation_) break;
    if (ec) {
      writing_ = false;
      fail(ErrorKind::kWrite);
      co_return;
    }
  }
  writing_ = false;
}

template <typename Stream>
Awaitable<ExchangeResult> Http2Session<Stream>::exchange(const RequestTemplate& request,
                                                         Clock::time_point deadline) {
  ExchangeResult r;
  if (!isOpen()) {
    r.retry = true;
    co_return r;
  }
  Http2Stream* s = state_.submit(request, deadline);
  if (s == nullptr) {
    r.error = ErrorKind::kWrite;
    co_return r;
  }
  co_await flush();
  if (!s->closed) {
    boost::system::error_code ec;
    s->done.expires_at(Clock::time_point::max());
    co_await s->done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (s->refused) {
    r.retry = true;
  } else {
    r.error = s->error;
    r.status = s->status;
    if (r.error == ErrorKind::kNone && r.status == 0) r.error = ErrorKind::kParse;
  }
  r.bytes_read = s->bytes;
  state_.release(s);
  co_return r;
}

template class Http2Session<TcpStream>;
template class Http2Session<TlsStream>;

}  // namespace turnout::bench
