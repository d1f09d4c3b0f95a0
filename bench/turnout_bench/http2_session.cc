#include "bench/turnout_bench/http2_session.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>

namespace turnout::bench {
namespace {

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;
constexpr int32_t kWindow = 16 * 1024 * 1024;

Http2ClientState& self(void* user) { return *static_cast<Http2ClientState*>(user); }

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    self(user).onStreamHeader(frame->hd.stream_id,
                              std::string_view(reinterpret_cast<const char*>(name), namelen),
                              std::string_view(reinterpret_cast<const char*>(value), valuelen));
  }
  return 0;
}

int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self(user).onGoaway(frame->goaway.last_stream_id);
  } else if (frame->hd.stream_id != 0) {
    self(user).onStreamFrame(frame->hd.stream_id, frame->hd.length + 9);
  }
  return 0;
}

int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
  self(user).onStreamClose(stream_id, error_code);
  return 0;
}

// A request nghttp2 could not start (after GOAWAY, say): the server never
// saw it.
int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    self(user).onStreamClose(frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
  }
  return 0;
}

ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                 nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2Stream*>(source->ptr);
  const std::string_view body = s->request->body;
  const size_t n = std::min(length, body.size() - s->body_sent);
  std::memcpy(buf, body.data() + s->body_sent, n);
  s->body_sent += n;
  if (s->body_sent == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_header_callback(c, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, onFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, onStreamClose);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(c, onFrameNotSend);
    return c;
  }();
  return cbs;
}

// A field whose bytes outlive the stream (templates live for the run).
nghttp2_nv field(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

}  // namespace

// --- Http2ClientState ---------------------------------------------------------

Http2ClientState::~Http2ClientState() { failAll(ErrorKind::kRead); }

bool Http2ClientState::start() {
  failAll(ErrorKind::kRead);
  goaway_ = false;
  last_accepted_stream_ = INT32_MAX;
  if (nghttp2_session_client_new(&session_, callbacks(), this) != 0) {
    session_ = nullptr;
    return false;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kWindow)}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWindow);
  return true;
}

void Http2ClientState::failAll(ErrorKind kind) {
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
  for (Http2Stream* s : active_) {
    s->error = kind;
    complete(s);
  }
  active_.clear();
}

Http2Stream* Http2ClientState::submit(const RequestTemplate& request, Clock::time_point deadline) {
  if (free_.empty()) {
    pool_.push_back(std::make_unique<Http2Stream>(io_));
    free_.push_back(pool_.back().get());
  }
  Http2Stream* s = free_.back();
  s->request = &request;
  s->body_sent = 0;
  s->deadline = deadline;
  s->status = 0;
  s->bytes = 0;
  s->error = ErrorKind::kNone;
  s->closed = false;
  s->refused = false;
  nv_.clear();
  nv_.push_back(field(":method", request.method));
  nv_.push_back(field(":scheme", request.scheme));
  nv_.push_back(field(":authority", request.authority));
  nv_.push_back(field(":path", request.path));
  for (const auto& [name, value] : request.headers) {
    if (name == "connection" || name == "keep-alive" || name == "transfer-encoding") continue;
    nv_.push_back(field(name, value));
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    s->content_length = std::to_string(request.body.size());
    nv_.push_back(field("content-length", s->content_length));
  }
  nghttp2_data_provider body{};
  body.source.ptr = s;
  body.read_callback = readBody;
  s->id = nghttp2_submit_request(session_, nullptr, nv_.data(), nv_.size(),
                                 request.body.empty() ? nullptr : &body, nullptr);
  if (s->id < 0) return nullptr;
  free_.pop_back();
  active_.push_back(s);
  return s;
}

bool Http2ClientState::receive(const char* data, size_t n) {
  return session_ != nullptr &&
         nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), n) >= 0;
}

bool Http2ClientState::takeOutput(std::string& out, size_t limit) {
  while (session_ != nullptr && out.size() < limit) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return true;
}

bool Http2ClientState::expire(Clock::time_point now) {
  bool reset = false;
  for (size_t i = 0; i < active_.size();) {
    Http2Stream* s = active_[i];
    if (now < s->deadline) {
      ++i;
      continue;
    }
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    reset = true;
    s->error = ErrorKind::kTimeout;
    active_[i] = active_.back();
    active_.pop_back();
    complete(s);
  }
  return reset;
}

Http2Stream* Http2ClientState::find(int32_t id) const {
  for (Http2Stream* s : active_) {
    if (s->id == id) return s;
  }
  return nullptr;
}

void Http2ClientState::complete(Http2Stream* s) {
  s->closed = true;
  s->done.cancel();
}

void Http2ClientState::onStreamHeader(int32_t stream_id, std::string_view name,
                                      std::string_view value) {
  if (name != ":status") return;
  Http2Stream* s = find(stream_id);
  if (s == nullptr) return;
  uint16_t status = 0;
  std::from_chars(value.data(), value.data() + value.size(), status);
  if (status >= 200) s->status = status;  // 1xx heads are interim
}

void Http2ClientState::onStreamFrame(int32_t stream_id, uint64_t bytes) {
  if (Http2Stream* s = find(stream_id)) s->bytes += bytes;
}

void Http2ClientState::onStreamClose(int32_t stream_id, uint32_t error_code) {
  const auto it = std::find_if(active_.begin(), active_.end(),
                               [&](const Http2Stream* s) { return s->id == stream_id; });
  if (it == active_.end()) return;
  Http2Stream* s = *it;
  *it = active_.back();
  active_.pop_back();
  if (error_code == NGHTTP2_REFUSED_STREAM ||
      (goaway_ && stream_id > last_accepted_stream_ && s->status == 0)) {
    s->refused = true;
  } else if (error_code != NGHTTP2_NO_ERROR) {
    s->error = ErrorKind::kRead;
  }
  complete(s);
}

void Http2ClientState::onGoaway(int32_t last_stream_id) {
  goaway_ = true;
  last_accepted_stream_ = last_stream_id;
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
asio::awaitable<ErrorKind> Http2Session<Stream>::connect(Clock::time_point deadline) {
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
asio::awaitable<void> Http2Session<Stream>::readLoop(uint64_t generation) {
  boost::system::error_code ec;
  while (generation == generation_) {
    const size_t n = co_await stream_->async_read_some(
        asio::buffer(rbuf_), asio::redirect_error(asio::use_awaitable, ec));
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
asio::awaitable<void> Http2Session<Stream>::flush() {
  if (writing_) co_return;
  writing_ = true;
  boost::system::error_code ec;
  while (state_.live()) {
    wbuf_.clear();
    if (!state_.takeOutput(wbuf_, kWriteBatch)) {
      writing_ = false;
      fail(ErrorKind::kWrite);
      co_return;
    }
    if (wbuf_.empty()) break;
    const uint64_t generation = generation_;
    co_await asio::async_write(*stream_, asio::buffer(wbuf_),
                               asio::redirect_error(asio::use_awaitable, ec));
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
asio::awaitable<ExchangeResult> Http2Session<Stream>::exchange(const RequestTemplate& request,
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
    co_await s->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
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
