#include "config/control_plane/etcd_store.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace turnout::control_plane {
namespace {

// Debian's abseil has its own string_view.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kMaxAnswerBytes = 256 * 1024 * 1024;
// How often a blocked watch read looks at unwatch().
constexpr int kWatchPollMs = 200;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int msUntil(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
}

std::string errnoText(int e) { return std::strerror(e); }

absl::Status sendAll(int fd, std::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, msUntil(deadline)) <= 0)
        return absl::DeadlineExceededError("send timed out");
      continue;
    }
    return absl::UnavailableError(absl::StrCat("send: ", errnoText(errno)));
  }
  return absl::OkStatus();
}

std::string requestText(std::string_view host, std::string_view path, std::string_view body,
                        bool close) {
  return absl::StrCat("POST ", av(path), " HTTP/1.1\r\nHost: ", av(host),
                      "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                      close ? "\r\nConnection: close" : "", "\r\n\r\n", av(body));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::connect(const EtcdEndpoint& endpoint,
                                                              absl::Duration wait,
                                                              Options options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(endpoint.port);
  if (int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
      rc != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat(endpoint.url(), ": cannot resolve ", endpoint.host,
                                               ": ", rc != 0 ? gai_strerror(rc) : "no address"));
  }
  std::vector<Address> addresses;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address address;
    std::memcpy(&address.storage, a->ai_addr, a->ai_addrlen);
    address.size = a->ai_addrlen;
    addresses.push_back(address);
  }
  ::freeaddrinfo(found);
  std::unique_ptr<EtcdStore> store(new EtcdStore(endpoint, std::move(addresses), options));
  const absl::Time deadline = absl::Now() + wait;
  absl::Duration backoff = kFirstBackoff;
  for (;;) {
    auto loaded = store->post("/v3/kv/range", etcdRangeRequest(endpoint.prefix));
    if (loaded.ok()) break;
    if (absl::Now() + backoff > deadline) {
      return absl::UnavailableError(absl::StrCat(endpoint.url(), ": etcd does not answer (waited ",
                                                 absl::FormatDuration(wait),
                                                 "): ", loaded.status().message()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
  return store;
}

EtcdStore::~EtcdStore() { unwatch(); }

absl::StatusOr<int> EtcdStore::open(absl::Time deadline) const {
  absl::Status last = absl::UnavailableError("no address");
  for (const Address& address : addresses_) {
    const int fd =
        ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = absl::UnavailableError(absl::StrCat("socket: ", errnoText(errno)));
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.size) == 0) {
      return fd;
    }
    if (errno != EINPROGRESS) {
      last = absl::UnavailableError(absl::StrCat("connect: ", errnoText(errno)));
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, msUntil(deadline)) <= 0) {
      ::close(fd);
      return absl::UnavailableError("connect timed out");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return fd;
    last = absl::UnavailableError(absl::StrCat("connect: ", errnoText(err)));
    ::close(fd);
  }
  return last;
}

absl::StatusOr<std::string> EtcdStore::post(std::string_view path, std::string_view body) const {
  const absl::Time deadline = absl::Now() + options_.request_timeout;
  auto unavailable = [&](absl::string_view why) {
    return absl::UnavailableError(
        absl::StrCat("etcd at ", endpoint_.url(), " (", av(path), "): ", why));
  };
  auto opened = open(deadline);
  if (!opened.ok()) return unavailable(opened.status().message());
  Fd fd(*opened);
  const std::string host = absl::StrCat(endpoint_.host, ":", endpoint_.port);
  if (absl::Status s = sendAll(fd.get(), requestText(host, path, body, true), deadline); !s.ok()) {
    return unavailable(s.message());
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, msUntil(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0)
      return unavailable(
          absl::StrCat("no answer within ", absl::FormatDuration(options_.request_timeout)));
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return unavailable(absl::StrCat("recv: ", errnoText(errno)));
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > kMaxAnswerBytes) return unavailable("answer too large");
  }
  auto answer = parseHttpAnswer(raw);
  if (!answer.ok()) return unavailable(answer.status().message());
  if (answer->status != 200) {
    return unavailable(absl::StrCat("HTTP ", answer->status, ": ", etcdErrorMessage(answer->body)));
  }
  return std::move(answer->body);
}

absl::StatusOr<StoredState> EtcdStore::load() {
  auto body = post("/v3/kv/range", etcdRangeRequest(endpoint_.prefix));
  if (!body.ok()) return body.status();
  auto snapshot = parseEtcdRange(endpoint_.prefix, *body);
  if (!snapshot.ok()) {
    if (snapshot.status().code() == absl::StatusCode::kDataLoss) return snapshot.status();
    return absl::UnavailableError(
        absl::StrCat("etcd at ", endpoint_.url(), ": ", snapshot.status().message()));
  }
  revision_ = snapshot->revision;
  guard_ = snapshot->version_mod_revision;
  return std::move(snapshot->state);
}

absl::Status EtcdStore::apply(const Change& change) {
  if (change.puts.empty() && change.deletes.empty())
    return absl::OkStatus();  // State::expire, none due
  auto body = post("/v3/kv/txn", etcdTxnRequest(endpoint_.prefix, change, guard_));
  if (!body.ok()) return body.status();
  auto result = parseEtcdTxn(*body);
  if (!result.ok())
    return absl::UnavailableError(
        absl::StrCat("etcd at ", endpoint_.url(), ": ", result.status().message()));
  if (!result->succeeded) {
    return absl::AbortedError(
        absl::StrCat("config changed by another replica (etcd at ", endpoint_.url(), "); retry"));
  }
  revision_ = result->revision;
  guard_ = result->revision;
  return absl::OkStatus();
}

void EtcdStore::watch(ChangeCallback on_change) {
  unwatch();
  stopping_ = false;
  watch_from_ = revision_ + 1;
  watcher_ = std::thread(
      [this, on_change = std::move(on_change)]() mutable { watchLoop(std::move(on_change)); });
}

void EtcdStore::unwatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

bool EtcdStore::sleepFor(absl::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, absl::ToChronoMilliseconds(d), [this] { return stopping_.load(); });
}

void EtcdStore::watchLoop(ChangeCallback on_change) {
  int64_t next_revision = watch_from_;
  absl::Duration backoff = kFirstBackoff;
  bool broken = false;
  while (!stopping_) {
    bool reported = !broken;  // after a break, report -1 once the watch is back
    absl::Status s = watchOnce(on_change, next_revision, reported);
    if (stopping_) break;
    if (reported && broken) backoff = kFirstBackoff;
    if ((!broken || reported) && options_.on_watch_broken) options_.on_watch_broken(s);
    broken = true;
    if (!sleepFor(backoff)) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status EtcdStore::watchOnce(const ChangeCallback& on_change, int64_t& next_revision,
                                  bool& reported) {
  const absl::Time connect_deadline = absl::Now() + options_.request_timeout;
  auto opened = open(connect_deadline);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  const std::string host = absl::StrCat(endpoint_.host, ":", endpoint_.port);
  if (absl::Status s = sendAll(
          fd.get(),
          requestText(host, "/v3/watch", etcdWatchRequest(endpoint_.prefix, next_revision), false),
          connect_deadline);
      !s.ok()) {
    return s;
  }
  std::string raw;
  std::optional<HttpHead> head;
  ChunkedDecoder chunks;
  std::string lines;
  char buf[16384];
  while (!stopping_) {
    pollfd p{fd.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, kWatchPollMs);
    if (ready < 0 && errno != EINTR)
      return absl::UnavailableError(absl::StrCat("poll: ", errnoText(errno)));
    if (ready <= 0) {
      if (!head && absl::Now() > connect_deadline)
        return absl::UnavailableError("no answer to the watch request");
      continue;
    }
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("recv: ", errnoText(errno)));
    if (n == 0) return absl::UnavailableError("etcd closed the watch stream");
    std::string_view in(buf, static_cast<size_t>(n));
    if (!head) {
      raw.append(in);
      auto parsed = parseHttpHead(raw);
      if (!parsed.ok()) return parsed.status();
      if (!*parsed) continue;
      head = **parsed;
      if (head->status != 200 || !head->chunked) {
        return absl::UnavailableError(
            absl::StrCat("watch: HTTP ", head->status, ": ", raw.substr(head->size, 200)));
      }
      in = std::string_view(raw).substr(head->size);
    }
    if (absl::Status s = chunks.feed(in, lines); !s.ok()) return s;
    raw.clear();
    for (size_t nl; (nl = lines.find('\n')) != std::string::npos;) {
      const std::string line = lines.substr(0, nl);
      lines.erase(0, nl + 1);
      if (line.empty()) continue;
      auto message = parseEtcdWatchMessage(line);
      if (!message.ok()) return message.status();
      if (message->canceled) {
        if (message->compact_revision > 0) {
          // Compacted past what we would resume from: resume at the oldest
          // revision kept, and reload fully.
          next_revision = message->compact_revision;
          reported = false;
        }
        return absl::UnavailableError(absl::StrCat("watch canceled: ", message->reason));
      }
      if (message->created) {
        if (!reported) {
          reported = true;
          on_change(-1);
        }
        continue;
      }
      if (message->last_event_revision > 0) {
        next_revision = std::max(next_revision, message->last_event_revision + 1);
        on_change(message->last_event_revision);
      }
    }
    if (chunks.done()) return absl::UnavailableError("etcd ended the watch stream");
  }
  return absl::OkStatus();
}

}  // namespace turnout::control_plane
