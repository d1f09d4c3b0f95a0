#include "bench/turnout_bench/http2_session.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>

namespace turnout::bench {

struct Http2Session::Stream {
  explicit Stream(asio::io_context& io) : done(io) {}
  asio::steady_timer done;  // cancelled when the stream ends
  const RequestTemplate* request = nullptr;
  std::string content_length;  // the field value, alive while the stream is
  size_t body_sent = 0;
  Clock::time_point deadline;
  int32_t id = -1;
  uint16_t status = 0;
  uint64_t bytes = 0;
  ErrorKind error = ErrorKind::kNone;
  bool closed = false;
  bool refused = false;
};

namespace {

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;
constexpr int32_t kWindow = 16 * 1024 * 1024;

Http2Session& self(void* user) { return *static_cast<Http2Session*>(user); }

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

// A request nghttp2 could not start (after GOAWAY, or over the server's
// stream limit when the connection ends): the server never saw it.
int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    self(user).onStreamClose(frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
  }
  return 0;
}

ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                 nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2Session::Stream*>(source->ptr);
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

nghttp2_nv field(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

}  // namespace

Http2Session::Http2Session(asio::io_context& io, asio::ip::tcp::endpoint endpoint)
    : io_(io), socket_(io), endpoint_(std::move(endpoint)), rbuf_(kReadBuffer) {}

Http2Session::~Http2Session() { fail(ErrorKind::kRead); }

bool Http2Session::isOpen() const { return session_ != nullptr && !goaway_; }

void Http2Session::close() { fail(timed_out_ ? ErrorKind::kTimeout : ErrorKind::kRead); }

void Http2Session::fail(ErrorKind kind) {
  ++generation_;  // the reader of this connection stops
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
  for (Stream* s : active_) {
    s->error = kind;
    s->closed = true;
    s->done.cancel();
  }
  active_.clear();
}

void Http2Session::expireIfPast(Clock::time_point now) {
  if (now >= connect_deadline_ && socket_.is_open()) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    return;
  }
  bool reset = false;
  for (size_t i = 0; i < active_.size();) {
    Stream* s = active_[i];
    if (now < s->deadline) {
      ++i;
      continue;
    }
    // Only this stream times out: cancel it and let the others run.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    reset = true;
    s->error = ErrorKind::kTimeout;
    s->closed = true;
    s->done.cancel();
    active_[i] = active_.back();
    active_.pop_back();
  }
  if (reset) {
    asio::co_spawn(io_, flush(), [](std::exception_ptr e) {
      if (e) std::fprintf(stderr, "turnout-bench: h2 flush failed\n");
    });
  }
}

Http2Session::Stream* Http2Session::acquireStream() {
  if (free_.empty()) {
    pool_.push_back(std::make_unique<Stream>(io_));
    free_.push_back(pool_.back().get());
  }
  Stream* s = free_.back();
  free_.pop_back();
  return s;
}

void Http2Session::releaseStream(Stream* s) { free_.push_back(s); }

asio::awaitable<ErrorKind> Http2Session::connect(Clock::time_point deadline) {
  fail(ErrorKind::kRead);
  timed_out_ = false;
  goaway_ = false;
  last_accepted_stream_ = INT32_MAX;
  boost::system::error_code ec;
  socket_.open(endpoint_.protocol(), ec);
  if (ec) co_return ErrorKind::kConnect;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  connect_deadline_ = deadline;
  co_await socket_.async_connect(endpoint_, asio::redirect_error(asio::use_awaitable, ec));
  connect_deadline_ = Clock::time_point::max();
  if (ec || !socket_.is_open()) {
    fail(ErrorKind::kConnect);
    co_return ErrorKind::kConnect;
  }
  if (nghttp2_session_client_new(&session_, callbacks(), this) != 0) {
    session_ = nullptr;
    fail(ErrorKind::kConnect);
    co_return ErrorKind::kConnect;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kWindow)}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWindow);
  const uint64_t generation = generation_;
  asio::co_spawn(io_, readLoop(generation), [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "turnout-bench: h2 reader failed\n");
  });
  co_await flush();
  co_return isOpen() ? ErrorKind::kNone : ErrorKind::kConnect;
}

asio::awaitable<void> Http2Session::readLoop(uint64_t generation) {
  boost::system::error_code ec;
  while (generation == generation_) {
    const size_t n = co_await socket_.async_read_some(asio::buffer(rbuf_),
                                                      asio::redirect_error(asio::use_awaitable, ec));
    if (generation != generation_) co_return;
    if (ec) {
      fail(timed_out_ ? ErrorKind::kTimeout : ErrorKind::kRead);
      co_return;
    }
    const ssize_t used =
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(rbuf_.data()), n);
    if (used < 0) {
      fail(ErrorKind::kParse);
      co_return;
    }
    co_await flush();
  }
}

asio::awaitable<void> Http2Session::flush() {
  if (writing_) co_return;
  writing_ = true;
  boost::system::error_code ec;
  while (session_ != nullptr) {
    wbuf_.clear();
    while (wbuf_.size() < kWriteBatch) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        writing_ = false;
        fail(ErrorKind::kWrite);
        co_return;
      }
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (wbuf_.empty()) break;
    const uint64_t generation = generation_;
    co_await asio::async_write(socket_, asio::buffer(wbuf_),
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

asio::awaitable<ExchangeResult> Http2Session::exchange(const RequestTemplate& request,
                                                       Clock::time_point deadline) {
  ExchangeResult r;
  if (!isOpen()) {
    r.retry = true;
    co_return r;
  }
  Stream* s = acquireStream();
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
  nv_.push_back(field(":scheme", "http"));
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
  if (s->id < 0) {
    releaseStream(s);
    r.error = ErrorKind::kWrite;
    co_return r;
  }
  active_.push_back(s);
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
  releaseStream(s);
  co_return r;
}

namespace {

Http2Session::Stream* findStream(const std::vector<Http2Session::Stream*>& active, int32_t id) {
  for (Http2Session::Stream* s : active) {
    if (s->id == id) return s;
  }
  return nullptr;
}

}  // namespace

void Http2Session::onStreamHeader(int32_t stream_id, std::string_view name,
                                  std::string_view value) {
  if (name != ":status") return;
  Stream* s = findStream(active_, stream_id);
  if (s == nullptr) return;
  uint16_t status = 0;
  std::from_chars(value.data(), value.data() + value.size(), status);
  if (status >= 200) s->status = status;  // 1xx heads are interim
}

void Http2Session::onStreamFrame(int32_t stream_id, uint64_t bytes) {
  if (Stream* s = findStream(active_, stream_id)) s->bytes += bytes;
}

void Http2Session::onStreamClose(int32_t stream_id, uint32_t error_code) {
  const auto it = std::find_if(active_.begin(), active_.end(),
                               [&](const Stream* s) { return s->id == stream_id; });
  if (it == active_.end()) return;
  Stream* s = *it;
  *it = active_.back();
  active_.pop_back();
  s->closed = true;
  if (error_code == NGHTTP2_REFUSED_STREAM ||
      (goaway_ && stream_id > last_accepted_stream_ && s->status == 0)) {
    s->refused = true;
  } else if (error_code != NGHTTP2_NO_ERROR) {
    s->error = ErrorKind::kRead;
  }
  s->done.cancel();
}

void Http2Session::onGoaway(int32_t last_stream_id) {
  goaway_ = true;
  last_accepted_stream_ = last_stream_id;
}

}  // namespace turnout::bench
