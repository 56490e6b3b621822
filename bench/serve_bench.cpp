#include "bench/serve_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/error.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "serve/server.h"

namespace moec {

using nlohmann::json;
using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5));
  return v[i];
}

struct RequestTiming {
  double ttft = 0;
  std::vector<double> gaps;
  int64_t tokens = 0;
  bool ok = false;
};

// One streaming completion, timed at the client.
RequestTiming stream_one(httplib::Client& client, const std::string& prompt, int64_t max_tokens) {
  RequestTiming t;
  const json body{{"prompt", prompt},   {"max_tokens", max_tokens}, {"temperature", 0},
                  {"stream", true},     {"ignore_eos", true},       {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string buffer;
  const auto start = Clock::now();
  auto last = start;
  bool first = true;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: {", 0) != 0) continue;
      const json j = json::parse(event.substr(6));
      if (j.contains("usage")) t.tokens = j["usage"]["completion_tokens"];
      if (!j.contains("choices") || j["choices"].empty() || j["choices"][0]["text"].get<std::string>().empty())
        continue;
      const auto now = Clock::now();
      if (first) {
        t.ttft = std::chrono::duration<double>(now - start).count();
        first = false;
      } else {
        t.gaps.push_back(std::chrono::duration<double>(now - last).count());
      }
      last = now;
    }
    return true;
  };
  auto res = client.send(req);
  t.ok = res && res->status == 200;
  return t;
}

ordered_json run_level(Server& server, int port, const std::vector<std::string>& prompts, int clients,
                       int64_t max_tokens) {
  const auto steps_before = server.metrics().decode_steps();
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::vector<RequestTiming> timings;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600, 0);
      for (size_t i; (i = next++) < prompts.size();) {
        RequestTiming t = stream_one(client, prompts[i], max_tokens);
        std::lock_guard lock(mutex);
        timings.push_back(std::move(t));
      }
    });
  for (auto& t : threads) t.join();
  const double seconds = since(start);
  std::vector<double> ttft, itl;
  int64_t tokens = 0, failed = 0;
  for (const auto& t : timings) {
    if (!t.ok) ++failed;
    tokens += t.tokens;
    ttft.push_back(t.ttft);
    itl.insert(itl.end(), t.gaps.begin(), t.gaps.end());
  }
  const auto steps_after = server.metrics().decode_steps();
  const double steps = double(steps_after.first - steps_before.first);
  return ordered_json{{"clients", clients},
                      {"mean_batch", steps > 0 ? (steps_after.second - steps_before.second) / steps : 0.0},
                      {"requests", int64_t(prompts.size())},
                      {"failed", failed},
                      {"generated_tokens", tokens},
                      {"seconds", seconds},
                      {"tokens_per_second", double(tokens) / seconds},
                      {"requests_per_second", double(prompts.size()) / seconds},
                      {"ttft_p50_ms", 1e3 * percentile(ttft, 0.5)},
                      {"ttft_p99_ms", 1e3 * percentile(ttft, 0.99)},
                      {"itl_p50_ms", 1e3 * percentile(itl, 0.5)},
                      {"itl_p99_ms", 1e3 * percentile(itl, 0.99)}};
}

}  // namespace

ordered_json run_serve_bench(const ServeBenchOptions& o) {
  auto source = open_checkpoint(o.model);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  const std::string text = read_text_file(o.text);
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < o.requests; ++i) {
    const size_t start = size_t(i * 997 * o.prompt_chars) % std::max<size_t>(1, text.size() - size_t(o.prompt_chars));
    prompts.push_back(text.substr(start, size_t(o.prompt_chars)));
  }
  ThreadPool pool(o.threads);
  Model model(*source, pool);
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.engine.parallel = *std::max_element(o.clients.begin(), o.clients.end());
  options.engine.max_queue = options.engine.parallel;
  Server server(options);
  const int port = server.bind();
  std::thread http([&] { server.run(); });
  server.serve_model(model, tokenizer, o.model.filename().string(), checkpoint_chat(*source, o.model.filename().string()));
  ordered_json result{{"model", o.model.string()},
                      {"threads", pool.size()},
                      {"isa", isa_name(active_isa())},
                      {"max_tokens", o.max_tokens},
                      {"requests_per_level", o.requests},
                      {"levels", ordered_json::array()}};
  try {
    stream_one(*std::make_unique<httplib::Client>("127.0.0.1", port), prompts[0], 4);  // warm-up
    double single = 0, single_ttft = 0;
    for (int clients : o.clients) {
      std::vector<ordered_json> runs;
      for (int r = 0; r < o.repeats; ++r) runs.push_back(run_level(server, port, prompts, clients, o.max_tokens));
      std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
        return a["tokens_per_second"].template get<double>() < b["tokens_per_second"].template get<double>();
      });
      ordered_json level = runs[runs.size() / 2];
      if (clients == 1) {
        single = level["tokens_per_second"];
        single_ttft = level["ttft_p50_ms"];
      }
      if (single > 0) {
        level["vs_one_client"] = level["tokens_per_second"].get<double>() / single;
        level["ttft_p99_vs_one_client_p50"] = level["ttft_p99_ms"].get<double>() / single_ttft;
      }
      result["levels"].push_back(level);
    }
  } catch (...) {
    server.stop();
    http.join();
    throw;
  }
  server.stop();
  http.join();
  return result;
}

std::string format_serve_bench(const ordered_json& r) {
  std::string out = fmt::format(
      "moec serve on {} ({} threads, {} kernels): {} streaming greedy requests of {} tokens per level, loopback\n",
      r["model"].get<std::string>(), r["threads"].get<int>(), r["isa"].get<std::string>(),
      r["requests_per_level"].get<int64_t>(), r["max_tokens"].get<int64_t>());
  out += fmt::format("{:>8} {:>10} {:>9} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10}\n", "clients", "tokens/s", "req/s",
                     "vs 1", "batch", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99");
  for (const auto& l : r["levels"])
    out += fmt::format("{:>8} {:>10.0f} {:>9.2f} {:>9.2f}x {:>7.2f} {:>8.1f}ms {:>8.1f}ms {:>8.2f}ms {:>8.2f}ms{}\n",
                       l["clients"].get<int>(), l["tokens_per_second"].get<double>(),
                       l["requests_per_second"].get<double>(), l.value("vs_one_client", 0.0),
                       l["mean_batch"].get<double>(),
                       l["ttft_p50_ms"].get<double>(), l["ttft_p99_ms"].get<double>(), l["itl_p50_ms"].get<double>(),
                       l["itl_p99_ms"].get<double>(),
                       l["failed"].get<int64_t>() ? fmt::format("  ({} failed)", l["failed"].get<int64_t>()) : "");
  out += "vs 1: aggregate tokens/s over the same requests run one at a time (the 1-client row), same run;\n"
         "batch: mean sequences per decode step.\n";
  return out;
}

}  // namespace moec
