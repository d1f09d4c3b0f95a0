#include "bench/turnout_bench/load_run.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/turnout_bench/load_worker.h"
#include "bench/turnout_bench/transport.h"

namespace turnout::bench {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;

Clock::duration seconds(double s) { return duration_cast<Clock::duration>(duration<double>(s)); }

std::string endpointText(const asio::ip::tcp::endpoint& ep) {
  const std::string addr = ep.address().to_string();
  return ep.address().is_v6() ? absl::StrCat("[", addr, "]:", ep.port())
                              : absl::StrCat(addr, ":", ep.port());
}

// Opens one connection the way the sessions will (TCP, then TLS and ALPN
// for https://) within `timeout`; "" on success, else why not.
template <typename Stream>
std::string probeEndpoint(const Transport& transport, Clock::duration timeout) {
  asio::io_context io;
  std::optional<Stream> stream;
  std::string why;
  bool timed_out = false;
  SteadyTimer timer(io);
  ErrorKind result = ErrorKind::kConnect;
  asio::co_spawn(io, openStream(&io, &stream, &transport, &why),
                 [&](std::exception_ptr e, ErrorKind kind) {
                   result = e ? ErrorKind::kConnect : kind;
                   timer.cancel();
                 });
  timer.expires_after(timeout);
  timer.async_wait([&](boost::system::error_code e) {
    if (e || !stream) return;
    timed_out = true;
    boost::system::error_code ignored;
    stream->lowest_layer().close(ignored);
  });
  io.run();
  if (result == ErrorKind::kNone) return "";
  if (timed_out) return "no answer within --timeout";
  return why.empty() ? std::string("failed") : why;
}

// Tries the resolved addresses in order; the first that accepts a connection
// within `timeout` is the one the run uses.
absl::StatusOr<asio::ip::tcp::endpoint> probeTarget(const BenchOptions& options,
                                                    Clock::duration timeout) {
  const Target& target = options.target;
  asio::io_context io;
  TcpResolver resolver(io);
  boost::system::error_code ec;
  const auto results = resolver.resolve(target.host, std::to_string(target.port), ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", target.host, "': ", ec.message()));
  }
  const auto tls = target.tls() ? makeClientTlsContext(options.h2 ? "h2" : "http/1.1") : nullptr;
  std::string failures;
  for (const auto& entry : results) {
    const Transport transport{entry.endpoint(), tls.get(), target.host, options.h2};
    const std::string why = tls ? probeEndpoint<TlsStream>(transport, timeout)
                                : probeEndpoint<TcpStream>(transport, timeout);
    if (why.empty()) return transport.endpoint;
    absl::StrAppend(&failures, failures.empty() ? "" : "; ", endpointText(transport.endpoint),
                    ": ", why);
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", target.url, " (", failures, ")"));
}

// Splits `total` over `parts` as evenly as possible; part i.
uint64_t shareOf(uint64_t total, uint32_t parts, uint32_t i) {
  return total / parts + (i < total % parts ? 1 : 0);
}

class ProgressLine {
 public:
  explicit ProgressLine(const RunPlan& plan) : plan_(plan) {}
  void print(const std::vector<std::unique_ptr<LoadWorker>>& workers) {
    uint64_t responses = 0, errors = 0;
    for (const auto& w : workers) {
      responses += w->progressResponses();
      errors += w->progressErrors();
    }
    const Clock::time_point now = Clock::now();
    const double since_start = duration<double>(now - plan_.start).count();
    const double dt = duration<double>(now - last_time_).count();
    const double rps = dt > 0 ? static_cast<double>(responses - last_responses_) / dt : 0;
    last_time_ = now;
    last_responses_ = responses;
    std::fprintf(stderr, "\r[%6.1fs%s] %llu responses, %.0f req/s, %llu errors\x1b[K",
                 since_start, now < plan_.measure_start ? " warm-up" : "",
                 static_cast<unsigned long long>(responses), rps,
                 static_cast<unsigned long long>(errors));
    std::fflush(stderr);
  }
  void clear() {
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
  }

 private:
  const RunPlan& plan_;
  Clock::time_point last_time_ = plan_.start;
  uint64_t last_responses_ = 0;
};

}  // namespace

absl::StatusOr<RunOutcome> runLoad(const BenchOptions& options, const RequestSet& requests,
                                   bool progress) {
  RunPlan plan;
  plan.options = &options;
  plan.requests = &requests;
  plan.timeout = seconds(options.timeout_s);
  plan.total_connections = options.connections;
  auto endpoint = probeTarget(options, plan.timeout);
  if (!endpoint.ok()) return endpoint.status();
  plan.endpoint = *endpoint;

  RunOutcome outcome(requests);
  outcome.address = endpointText(plan.endpoint);
  std::vector<std::unique_ptr<LoadWorker>> workers;
  plan.start = Clock::now();
  plan.measure_start = plan.start + seconds(options.warmup_s);
  plan.measure_end = plan.measure_start + seconds(options.duration_s.value_or(kMaxRunSeconds));
  uint32_t first = 0;
  for (uint32_t i = 0; i < options.threads; ++i) {
    const auto conns = static_cast<uint32_t>(shareOf(options.connections, options.threads, i));
    std::optional<uint64_t> quota;
    if (options.requests) quota = shareOf(*options.requests, options.threads, i);
    workers.push_back(std::make_unique<LoadWorker>(plan, first, conns, quota));
    first += conns;
  }

  // The main thread waits for the workers, shows progress, takes signals and
  // enforces the hard deadline: the window, plus --timeout for the requests
  // in flight (open loop: due in the window), plus a second. Workers end by
  // themselves a second before it.
  asio::io_context main_io{1};
  SignalSet signals(main_io, SIGINT, SIGTERM);
  SteadyTimer hard_deadline(main_io);
  SteadyTimer progress_timer(main_io);
  ProgressLine line(plan);
  size_t done = 0;
  const auto stopAll = [&] {
    for (auto& w : workers) w->stop();
  };
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (ec) return;
    outcome.interrupted = true;
    stopAll();
  });
  hard_deadline.expires_at(plan.measure_end + plan.timeout + std::chrono::seconds(1));
  hard_deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    outcome.aborted = true;
    for (auto& w : workers) w->abort();
  });
  std::function<void()> tick = [&] {
    progress_timer.expires_after(std::chrono::seconds(1));
    progress_timer.async_wait([&](boost::system::error_code ec) {
      // A tick that expired just before the last worker finished can
      // still run after the cancel: it must not re-arm.
      if (ec || done == workers.size()) return;
      line.print(workers);
      tick();
    });
  };
  if (progress) tick();

  outcome.started_at = std::chrono::system_clock::now();
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&main_io, &done, &workers, &signals, &hard_deadline, &progress_timer,
                          worker = w.get()] {
      worker->run();
      asio::post(main_io, [&] {
        if (++done < workers.size()) return;
        boost::system::error_code ignored;
        signals.cancel(ignored);
        hard_deadline.cancel();
        progress_timer.cancel();
        main_io.stop();  // nothing the main thread still waits for matters now
      });
    });
  }
  main_io.run();
  for (auto& t : threads) t.join();
  if (progress) line.clear();

  const Clock::time_point finished = Clock::now();
  for (const auto& w : workers) outcome.stats.merge(w->stats());
  Clock::time_point end = std::min(finished, plan.measure_end);
  if (options.rate && !outcome.interrupted) {
    // Open loop: the window is the span of intended send times, so rps is
    // the responses due in it over its length (the offered rate, when the
    // server keeps up), however long they took to finish; and the workers
    // may end as soon as the last one has, a little before the window does.
    end = plan.measure_end;
    if (finished > plan.measure_end) {
      outcome.drain_s = duration<double>(finished - plan.measure_end).count();
    }
  }
  const RunStats& st = outcome.stats;
  const uint64_t finished_requests =
      st.requests + st.errorTotal() - st.errors[static_cast<size_t>(ErrorKind::kConnect)];
  if (options.requests && finished_requests >= *options.requests &&
      st.last_completion > plan.measure_start) {
    // Bounded by -n: the window closed with the last response.
    end = std::min(end, st.last_completion);
  }
  outcome.measured_s = std::max(0.0, duration<double>(end - plan.measure_start).count());
  return outcome;
}

}  // namespace turnout::bench
