// moec serve over loopback: an in-process server on a free port with the
// fixture model, driven by cpp-httplib clients.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/convert.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/text_stream.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "serve/server.h"
#include "tests/arch_fixtures.h"
#include "tests/test_paths.h"

using namespace moec;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The fixture model behind a server on 127.0.0.1 at a free port.
struct TestServer {
  explicit TestServer(ServerOptions options = {}, const fs::path& model_dir = test::fixture_model_dir())
      : source(open_checkpoint(model_dir)),
        tokenizer(Tokenizer::from_checkpoint(*source)),
        pool(2),
        model(*source, pool) {
    options.host = "127.0.0.1";
    options.port = 0;
    server = std::make_unique<Server>(options);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  void start() { server->serve_model(model, tokenizer, "tiny", checkpoint_chat(*source, "tiny")); }
  ~TestServer() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    return c;
  }
  // What `moec generate` prints for this prompt (greedy), EOS excluded.
  std::string generate_text(const std::string& prompt, int64_t tokens) {
    const std::vector<int32_t> ids = tokenizer.encode_prompt(prompt, model.config().bos_token_id);
    GenerateOptions o;
    o.max_new_tokens = tokens;
    o.stop_tokens = eos_tokens(model.config());
    TextStream stream(tokenizer, ids);
    std::string out;
    generate(model, ids, o, [&](int32_t id) {
      if (id != o.stop_tokens[0]) out += stream.push(id);
    });
    return out;
  }

  std::unique_ptr<CheckpointSource> source;
  Tokenizer tokenizer;
  ThreadPool pool;
  Model model;
  std::unique_ptr<Server> server;
  int port = 0;
  std::thread thread;
};

json completion_body(const std::string& prompt, int64_t max_tokens, bool stream = false) {
  return json{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

struct Completion {
  int status = 0;
  std::string text, finish_reason;
  json last;  // the whole body, or the last data chunk before [DONE]
  int chunks = 0;
  bool done = false;  // saw data: [DONE]
};

// A choice's text: completions' "text", chat's message or delta "content"
// (absent in a chunk that carries none).
std::string choice_text(const json& choice) {
  if (choice.contains("text")) return choice["text"];
  const json& m = choice.contains("message") ? choice["message"] : choice["delta"];
  return m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
}

// POSTs to /v1/completions (or `path`); a streamed answer is read as
// server-sent events.
Completion complete(const json& body, int port, const std::string& path = "/v1/completions") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  Completion out;
  if (!body.value("stream", false)) {
    auto res = c.Post(path, body.dump(), "application/json");
    REQUIRE(res);
    out.status = res->status;
    out.last = json::parse(res->body);
    if (res->status == 200) {
      out.text = choice_text(out.last["choices"][0]);
      out.finish_reason = out.last["choices"][0]["finish_reason"];
    }
    return out;
  }
  std::string buffer;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      REQUIRE(event.rfind("data: ", 0) == 0);
      std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        out.done = true;
        continue;
      }
      json j = json::parse(payload);
      ++out.chunks;
      out.last = j;
      if (j.contains("choices") && !j["choices"].empty()) {
        out.text += choice_text(j["choices"][0]);
        if (!j["choices"][0]["finish_reason"].is_null()) out.finish_reason = j["choices"][0]["finish_reason"];
      }
    }
    return true;
  };
  auto res = c.send(req);
  REQUIRE(res);
  out.status = res->status;
  if (res->status != 200) out.last = json::parse(res->body);
  return out;
}

std::vector<std::string> test_prompts() {
  const std::string text = read_text_file(test::text_file("test"));
  std::vector<std::string> prompts = {"The jury said", "It was", "In the morning the", "He"};
  for (size_t start : {0, 5000, 20000, 40000}) {
    const size_t length = start == 20000 ? 900 : 120;  // one prompt longer than a prefill chunk
    prompts.push_back(text.substr(start, length));
  }
  return prompts;
}

}  // namespace

TEST_CASE("serve: greedy completions equal moec generate, alone and with 8 concurrent clients", "[serve]") {
  TestServer s;
  const auto prompts = test_prompts();
  std::vector<std::string> expected;
  for (const auto& p : prompts) expected.push_back(s.generate_text(p, 24));
  s.start();
  for (size_t i = 0; i < prompts.size(); ++i) {
    Completion c = complete(completion_body(prompts[i], 24), s.port);
    REQUIRE(c.status == 200);
    CHECK(c.text == expected[i]);
    CHECK(c.last["usage"]["completion_tokens"].get<int64_t>() <= 24);
  }
  // Eight at once (half of them streamed), twice over.
  for (int round = 0; round < 2; ++round) {
    std::vector<Completion> results(prompts.size());
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i)
      clients.emplace_back([&, i] {
        results[i] = complete(completion_body(prompts[i], 24, (i + round) % 2 == 1), s.port);
      });
    for (auto& t : clients) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i << ", round " << round);
      REQUIRE(results[i].status == 200);
      CHECK(results[i].text == expected[i]);
      if ((i + round) % 2 == 1) {
        CHECK(results[i].done);
        CHECK(results[i].chunks >= 2);
        CHECK(!results[i].finish_reason.empty());
      }
    }
  }
  // A seeded sampled request: the same alone and beside others.
  json sampled{{"prompt", "The jury said"}, {"max_tokens", 20}, {"temperature", 0.9}, {"seed", 7}};
  const std::string alone = complete(sampled, s.port).text;
  std::vector<std::string> together(6);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < together.size(); ++i)
    clients.emplace_back([&, i] {
      json body = i % 2 ? sampled : completion_body(prompts[i], 20);
      together[i] = complete(body, s.port).text;
    });
  for (auto& t : clients) t.join();
  for (size_t i = 1; i < together.size(); i += 2) CHECK(together[i] == alone);
}

TEST_CASE("serve: spans of sequences at different positions give each sequence's own floats", "[serve]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  ThreadPool pool(2);
  Model model(*source, pool);
  const int64_t h = model.config().hidden_size;
  // Eight sequences of different lengths (a decode step of 8 streams).
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 8; ++i) {
    std::vector<int32_t> ids{1};
    for (int k = 0; k < 3 + 5 * i; ++k) ids.push_back(int32_t((97 * i + 31 * k + 7) % 4000 + 3));
    seqs.push_back(ids);
  }
  // Alone: each sequence prefilled, then its last token.
  std::vector<std::vector<float>> want;
  for (const auto& ids : seqs) {
    KvCache cache = model.make_cache(1, 64);
    model.forward(std::span(ids).first(ids.size() - 1), int64_t(ids.size()) - 1, cache);
    want.emplace_back(model.forward(std::span(ids).last(1), 1, cache));
  }
  // Together: sequence i in slot 7 - i, the last tokens in one call.
  KvCache cache = model.make_cache(8, 64);
  std::vector<int32_t> last;
  std::vector<SequenceSpan> step;
  for (int64_t i = 0; i < 8; ++i) {
    const auto& ids = seqs[size_t(i)];
    const SequenceSpan prefill{7 - i, 0, int64_t(ids.size()) - 1};
    model.forward(std::span(ids).first(ids.size() - 1), std::span(&prefill, 1), cache);
    last.push_back(ids.back());
    step.push_back({7 - i, int64_t(ids.size()) - 1, 1});
  }
  const auto& all = model.forward(last, step, cache);
  REQUIRE(all.size() == size_t(8 * h));
  for (size_t i = 0; i < 8; ++i) {
    INFO("sequence " << i);
    CHECK(std::equal(want[i].begin(), want[i].end(), all.begin() + ptrdiff_t(i * size_t(h))));
  }
}

TEST_CASE("serve: echo with logprobs scores the prompt as the model does", "[serve]") {
  TestServer s;
  const std::vector<int32_t> ids = {1, 415, 2796, 773, 9, 300, 50, 61, 700};
  // The model's own log-softmax of each next token.
  std::vector<double> want;
  {
    KvCache cache = s.model.make_cache(1, 64);
    const auto& hidden = s.model.forward(ids, int64_t(ids.size()), cache);
    const int64_t v = s.model.config().vocab_size;
    std::vector<float> logits(ids.size() * size_t(v));
    s.model.logits(hidden.data(), int64_t(ids.size()), logits.data());
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const float* row = &logits[i * size_t(v)];
      double max = *std::max_element(row, row + v), sum = 0;
      for (int64_t k = 0; k < v; ++k) sum += std::exp(row[k] - max);
      want.push_back(row[ids[i + 1]] - max - std::log(sum));
    }
  }
  s.start();
  json body{{"prompt", ids}, {"max_tokens", 2}, {"temperature", 0}, {"logprobs", 3}, {"echo", true}};
  Completion c = complete(body, s.port);
  REQUIRE(c.status == 200);
  const json& lp = c.last["choices"][0]["logprobs"];
  REQUIRE(lp["tokens"].size() == ids.size() + 2);
  CHECK(lp["token_logprobs"][0].is_null());  // the first token of an id prompt has no context
  for (size_t i = 1; i < ids.size(); ++i) CHECK(lp["token_logprobs"][i].get<double>() == Approx(want[i - 1]).margin(2e-4));
  for (size_t i = ids.size(); i < ids.size() + 2; ++i) {  // greedy: the chosen token is the likeliest
    double best = -1e30;
    for (auto& [text, value] : lp["top_logprobs"][i].items()) best = std::max(best, value.get<double>());
    CHECK(lp["token_logprobs"][i].get<double>() == Approx(best));
    CHECK(lp["top_logprobs"][i].size() <= 3);
  }
  CHECK(c.last["usage"]["prompt_tokens"] == ids.size());
  // Scoring only (lm-evaluation-harness): max_tokens 0 with echo.
  body["max_tokens"] = 0;
  Completion scored = complete(body, s.port);
  REQUIRE(scored.status == 200);
  CHECK(scored.last["choices"][0]["logprobs"]["tokens"].size() == ids.size());
  CHECK(scored.last["usage"]["completion_tokens"] == 0);
}

TEST_CASE("serve: a list of prompts gets one choice each, as the prompts would alone", "[serve]") {
  TestServer s;
  s.start();
  const std::vector<int32_t> ids = {1, 415, 2796, 773};
  json batch{{"prompt", json::array({"The jury said", ids, "It was"})}, {"max_tokens", 6}, {"temperature", 0},
             {"logprobs", 1}};
  Completion all = complete(batch, s.port);
  REQUIRE(all.status == 200);
  const json& choices = all.last["choices"];
  REQUIRE(choices.size() == 3);
  int64_t tokens = 0;
  for (size_t i = 0; i < 3; ++i) {
    json one = batch;
    one["prompt"] = batch["prompt"][i];
    Completion alone = complete(one, s.port);
    REQUIRE(alone.status == 200);
    CHECK(choices[i]["index"] == i);
    CHECK(choices[i]["text"] == alone.text);
    CHECK(choices[i]["logprobs"]["tokens"] == alone.last["choices"][0]["logprobs"]["tokens"]);
    tokens += alone.last["usage"]["completion_tokens"].get<int64_t>();
  }
  CHECK(all.last["usage"]["completion_tokens"] == tokens);
}

TEST_CASE("serve: stop sequences end the text before them, streamed or not", "[serve]") {
  TestServer s;
  const std::string full = s.generate_text("The jury said", 24);
  REQUIRE(full.find("the first") != std::string::npos);
  const std::string want = full.substr(0, full.find("the first"));
  s.start();
  for (bool stream : {false, true}) {
    json body = completion_body("The jury said", 24, stream);
    body["stop"] = json::array({"nonexistent", "the first"});
    Completion c = complete(body, s.port);
    REQUIRE(c.status == 200);
    CHECK(c.text == want);
    CHECK(c.finish_reason == "stop");
  }
  // A stop sequence that never appears changes nothing.
  json body = completion_body("The jury said", 24, true);
  body["stop"] = "zzzz";
  Completion c = complete(body, s.port);
  CHECK(c.text == full);
  CHECK(c.finish_reason == "length");
}

TEST_CASE("serve: bad requests get OpenAI error objects and the server goes on", "[serve]") {
  ServerOptions options;
  options.engine.ctx = 256;
  options.max_body_bytes = 64 * 1024;
  TestServer s(options);
  auto c = s.client();
  {  // while loading
    auto health = c.Get("/health");
    REQUIRE(health);
    CHECK(health->status == 503);
    auto res = c.Post("/v1/completions", completion_body("x", 2).dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 503);
  }
  s.start();
  const std::string long_prompt(4000, 'a');
  struct Case {
    std::string body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"{not json", 400, ""},
      {"[1, 2]", 400, ""},
      {R"({"max_tokens": 4})", 400, "prompt"},
      {R"({"prompt": 5})", 400, "prompt"},
      {R"({"prompt": []})", 400, "prompt"},
      {R"({"prompt": ["a", 5]})", 400, "prompt"},
      {R"({"prompt": ["a", "b"], "stream": true})", 400, "stream"},
      {R"({"prompt": [1, -1]})", 400, "prompt"},
      {R"({"prompt": [1, 4096]})", 400, "prompt"},
      {R"({"prompt": [1, 2.5]})", 400, "prompt"},
      {R"({"prompt": "x", "max_tokens": 0})", 400, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": -5})", 400, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": "10"})", 400, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 100000})", 400, "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", 400, "temperature"},
      {R"({"prompt": "x", "temperature": 3})", 400, "temperature"},
      {R"({"prompt": "x", "top_p": 0})", 400, "top_p"},
      {R"({"prompt": "x", "stop": 5})", 400, "stop"},
      {R"({"prompt": "x", "stop": ["a", 1]})", 400, "stop"},
      {json{{"prompt", "x"}, {"stop", std::vector<std::string>(17, "s")}}.dump(), 400, "stop"},
      {R"({"prompt": "x", "stream": "yes"})", 400, "stream"},
      {R"({"prompt": "x", "logprobs": 50})", 400, "logprobs"},
      {R"({"prompt": "x", "echo": 1})", 400, "echo"},
      {R"({"prompt": "x", "n": 2})", 400, "n"},
      {R"({"prompt": "x", "seed": "s"})", 400, "seed"},
      {R"({"prompt": "x", "suffix": "y"})", 400, "suffix"},
      {R"({"prompt": "x", "presence_penalty": 0.5})", 400, "presence_penalty"},
      {json{{"prompt", long_prompt}, {"max_tokens", 4}}.dump(), 400, "prompt"},
      {json{{"prompt", std::string(70 * 1024, 'a')}}.dump(), 413, ""},
  };
  for (const Case& k : cases) {
    INFO(k.body.substr(0, 80));
    auto res = c.Post("/v1/completions", k.body, "application/json");
    REQUIRE(res);
    CHECK(res->status == k.status);
    json j = json::parse(res->body);
    REQUIRE(j.contains("error"));
    CHECK(!j["error"]["message"].get<std::string>().empty());
    CHECK(j["error"].contains("type"));
    if (!k.param.empty()) CHECK(j["error"]["param"] == k.param);
  }
  auto get = c.Get("/v1/completions");
  REQUIRE(get);
  CHECK(get->status == 405);
  auto missing = c.Get("/v2/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body).contains("error"));
  auto chat = c.Post("/v1/chat/completions", R"({"messages": []})", "application/json");
  REQUIRE(chat);
  CHECK(chat->status == 400);
  CHECK(json::parse(chat->body)["error"]["message"].get<std::string>().find("chat template") != std::string::npos);
  auto models = c.Get("/v1/models");
  REQUIRE(models);
  CHECK(json::parse(models->body)["data"][0]["id"] == "tiny");
  auto one = c.Get("/v1/models/tiny");
  REQUIRE(one);
  CHECK(one->status == 200);
  CHECK(json::parse(one->body)["id"] == "tiny");
  auto other = c.Get("/v1/models/gpt-4");
  REQUIRE(other);
  CHECK(other->status == 404);
  CHECK(json::parse(other->body)["error"]["code"] == "model_not_found");
  // Still serving.
  Completion ok = complete(completion_body("The jury said", 4), s.port);
  CHECK(ok.status == 200);
  auto health = c.Get("/health");
  CHECK(health->status == 200);
}

TEST_CASE("serve: CORS: a preflight is answered without the API key, and answers allow any origin", "[serve]") {
  ServerOptions options;
  options.api_key = "sesame";
  TestServer s(options);
  s.start();
  auto c = s.client();
  auto preflight = c.Options("/v1/chat/completions", {{"Origin", "http://ui.example"},
                                                      {"Access-Control-Request-Method", "POST"},
                                                      {"Access-Control-Request-Headers", "authorization, content-type"}});
  REQUIRE(preflight);
  CHECK(preflight->status == 204);
  CHECK(preflight->get_header_value("Access-Control-Allow-Origin") == "*");
  CHECK(preflight->get_header_value("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
  auto denied = c.Post("/v1/completions", completion_body("x", 1).dump(), "application/json");
  REQUIRE(denied);
  CHECK(denied->status == 401);
  CHECK(denied->get_header_value("Access-Control-Allow-Origin") == "*");
}

TEST_CASE("serve: an API key is required when set (not for /health)", "[serve]") {
  ServerOptions options;
  options.api_key = "sesame";
  TestServer s(options);
  s.start();
  auto c = s.client();
  const std::string body = completion_body("The jury", 2).dump();
  CHECK(c.Post("/v1/completions", body, "application/json")->status == 401);
  CHECK(c.Post("/v1/completions", {{"Authorization", "Bearer wrong"}}, body, "application/json")->status == 401);
  CHECK(c.Get("/metrics")->status == 401);
  CHECK(c.Post("/v1/completions", {{"Authorization", "Bearer sesame"}}, body, "application/json")->status == 200);
  CHECK(c.Get("/health")->status == 200);
}

TEST_CASE("serve: a full server answers 429, and a client that leaves frees its slot", "[serve]") {
  ServerOptions options;
  options.engine.parallel = 1;
  options.engine.max_queue = 0;
  TestServer s(options);
  s.start();
  // A long stream that the client abandons after its first chunk.
  std::atomic<bool> started{false}, leave{false};
  std::thread reader([&] {
    httplib::Client c("127.0.0.1", s.port);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = completion_body("The jury said", 800, true).dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      started = true;
      while (!leave) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return false;  // disconnect
    };
    c.send(req);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto c = s.client();
  auto busy = c.Post("/v1/completions", completion_body("x", 2).dump(), "application/json");
  REQUIRE(busy);
  CHECK(busy->status == 429);
  CHECK(json::parse(busy->body)["error"]["code"] == "server_busy");
  leave = true;
  reader.join();
  // The slot comes back within the next engine steps.
  int status = 0;
  for (int i = 0; i < 200 && status != 200; ++i) {
    auto res = c.Post("/v1/completions", completion_body("x", 2).dump(), "application/json");
    status = res ? res->status : 0;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(status == 200);
  for (int i = 0; i < 200 && s.server->engine()->load().active > 0; ++i)  // the cancelled stream's slot
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(s.server->engine()->load().active == 0);
}

TEST_CASE("serve: 1000 mixed requests (10% malformed, disconnects) are all answered and counted", "[serve]") {
  TestServer s;
  s.start();
  // Warm-up: every slot, thread and buffer in use once.
  {
    std::vector<std::thread> warm;
    for (int i = 0; i < 16; ++i)
      warm.emplace_back([&, i] { complete(completion_body("The jury said", 8, i % 2), s.port); });
    for (auto& t : warm) t.join();
  }
  const uint64_t idle_rss = current_rss_bytes();
#if defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang's spelling
#define MOEC_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(MOEC_TEST_UNDER_ASAN)
  constexpr int kPerClient = 20;  // the sanitizer build runs a fifth of them (10x slower), and its
  constexpr bool kMeasureRss = false;  // quarantine holds freed memory, so RSS says nothing there
#else
  constexpr int kPerClient = 100;
  constexpr bool kMeasureRss = true;
#endif
  constexpr int kClients = 10, kTotal = kClients * kPerClient;
  std::atomic<int> ok{0}, bad{0}, left{0}, wrong{0};
  std::atomic<int64_t> tokens{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t)
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", s.port);
      c.set_read_timeout(30, 0);
      for (int i = 0; i < kPerClient; ++i) {
        const int k = t * kPerClient + i;
        if (k % 10 == 3) {  // malformed
          auto res = c.Post("/v1/completions", k % 20 == 3 ? "{\"prompt\": " : R"({"prompt": "a", "n": 3})",
                            "application/json");
          (res && res->status == 400 ? bad : wrong)++;
          continue;
        }
        json body = completion_body(k % 3 ? "The jury said" : "It was", 4 + k % 5, k % 2 == 0);
        if (k % 10 == 7) {  // a stream the client leaves after one chunk
          body["stream"] = true;
          httplib::Request req;
          req.method = "POST";
          req.path = "/v1/completions";
          req.body = body.dump();
          req.set_header("Content-Type", "application/json");
          req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return false; };
          httplib::Client once("127.0.0.1", s.port);
          once.send(req);
          left++;
          continue;
        }
        if (!body["stream"].get<bool>()) {
          auto res = c.Post("/v1/completions", body.dump(), "application/json");
          if (res && res->status == 200) {
            ok++;
            tokens += json::parse(res->body)["usage"]["completion_tokens"].get<int64_t>();
          } else {
            wrong++;
          }
          continue;
        }
        Completion r = complete(body, s.port);
        (r.status == 200 && r.done ? ok : wrong)++;
      }
    });
  for (auto& t : clients) t.join();
  CHECK(wrong == 0);
  CHECK(bad == kTotal / 10);
  CHECK(left == kTotal / 10);
  CHECK(ok == kTotal * 8 / 10);
  ServeMetrics& m = s.server->metrics();
  // The server counts a request once its last byte is written, which the
  // client may see a moment earlier.
  for (int i = 0; i < 200 && m.requests("/v1/completions", 200) < uint64_t(kTotal * 9 / 10 + 16); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(m.requests("/v1/completions", 400) == kTotal / 10);
  CHECK(m.requests("/v1/completions", 200) == kTotal * 9 / 10 + 16);  // a stream left mid-way was answered 200
  // Every slot is free again.
  for (int i = 0; i < 200 && s.server->engine()->load().active > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(s.server->engine()->load().active == 0);
  CHECK(s.server->engine()->load().queued == 0);
  // Memory back near its idle level (no per-request growth).
  if (kMeasureRss) {
    CHECK(idle_rss > 0);
    CHECK(double(current_rss_bytes()) < double(idle_rss) + 16.0 * (1 << 20));
  }
  auto metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find(fmt::format("moec_requests_total{{endpoint=\"/v1/completions\",status=\"400\"}} {}",
                                       kTotal / 10)) != std::string::npos);
  CHECK(metrics->body.find("moec_active_slots 0") != std::string::npos);
  CHECK(metrics->body.find("moec_batch_size_bucket{le=\"+Inf\"}") != std::string::npos);
}

TEST_CASE("moec serve: starts and exits 0 on SIGTERM, bad flags and models fail in one line", "[serve][cli]") {
  test::TempDir tmp;
  const std::string model = test::fixture_model_dir().string();
  // Started on a free port, stopped by SIGTERM once ready.
  const std::string script =
      "'" MOEC_BINARY "' serve '" + model + "' --port 0 --threads 1 2>'" + (tmp / "err").string() +
      "' & pid=$!; for i in $(seq 300); do grep -q ready '" + (tmp / "err").string() +
      "' && break; sleep 0.1; done; kill -TERM $pid; wait $pid; echo $? >'" + (tmp / "rc").string() + "'";
  test::write_file(tmp / "run.sh", script);
  REQUIRE(std::system(("bash '" + (tmp / "run.sh").string() + "'").c_str()) == 0);
  const std::string err = test::read_file(tmp / "err");
  INFO(err);
  CHECK(err.find("ready: model") != std::string::npos);
  CHECK(err.find("SIGTERM received") != std::string::npos);
  CHECK(std::stoi(test::read_file(tmp / "rc")) == 0);

  auto missing = test::run_moec("serve " + (tmp / "nothing").string() + " --port 0");
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("nothing") != std::string::npos);
  CHECK(std::count(missing.err.begin(), missing.err.end(), '\n') == 2);  // the listening line, then the error
  auto port = test::run_moec("serve '" + model + "' --port 70000");
  CHECK(port.exit_code != 0);
  CHECK(port.err.find("--port") != std::string::npos);
  auto parallel = test::run_moec("serve '" + model + "' --parallel 0");
  CHECK(parallel.exit_code != 0);
}

TEST_CASE("serve: every architecture's greedy completions equal moec generate with 8 concurrent clients",
          "[serve][arch]") {
  for (const auto& [name, dir] : test::arch_fixtures()) {
    INFO(name);
    TestServer s({}, dir);
    const auto prompts = test_prompts();
    std::vector<std::string> expected;
    for (const auto& p : prompts) expected.push_back(s.generate_text(p, 16));
    s.start();
    std::vector<Completion> results(prompts.size());
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i)
      clients.emplace_back([&, i] { results[i] = complete(completion_body(prompts[i], 16, i % 2 == 1), s.port); });
    for (auto& t : clients) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i);
      REQUIRE(results[i].status == 200);
      CHECK(results[i].text == expected[i]);
    }
  }
}

namespace {

// The fixture model with a chat template: its files linked into a folder
// with a tokenizer_config.json holding Mixtral-Instruct's template (the
// fixture itself has none).
struct ChatModel {
  test::TempDir dir;
  ChatModel() {
    for (const auto& f : fs::directory_iterator(test::fixture_model_dir()))
      fs::create_symlink(fs::absolute(f.path()), dir / f.path().filename().string());
    std::ifstream in(std::string(MOEC_SOURCE_DIR) + "/tests/data/chat_templates/mistralai-Mixtral-8x7B-Instruct-v0.1.jinja");
    const std::string jinja((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(!jinja.empty());
    std::ofstream(dir / "tokenizer_config.json")
        << json{{"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}}, {"chat_template", jinja}}.dump(1);
  }
};

json chat_body(const json& messages, int64_t max_tokens, bool stream = false) {
  return json{{"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

}  // namespace

TEST_CASE("serve: chat completions apply the checkpoint's chat template, streamed or not", "[serve]") {
  ChatModel chat_model;
  TestServer s({}, chat_model.dir.path());
  s.start();
  const json messages = json::parse(R"([{"role": "user", "content": "The jury said"},
                                        {"role": "assistant", "content": "that the city"},
                                        {"role": "user", "content": "It was"}])");
  // What the template makes of it, tokenized with "<s>" as BOS (not as text).
  const std::string rendered = "<s>[INST] The jury said [/INST]that the city</s>[INST] It was [/INST]";
  const std::vector<int32_t> ids = s.tokenizer.encode_with_specials(rendered);
  REQUIRE(ids.size() > 4);
  CHECK(ids[0] == s.tokenizer.bos_id());
  CHECK(std::count(ids.begin(), ids.end(), s.tokenizer.eos_id()) == 1);
  CHECK(std::count(ids.begin(), ids.end(), s.tokenizer.bos_id()) == 1);
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.stop_tokens = eos_tokens(s.model.config());
  TextStream stream(s.tokenizer, ids);
  std::string want;
  generate(s.model, ids, o, [&](int32_t id) {
    if (id != o.stop_tokens[0]) want += stream.push(id);
  });

  Completion whole = complete(chat_body(messages, 12), s.port, "/v1/chat/completions");
  REQUIRE(whole.status == 200);
  CHECK(whole.text == want);
  CHECK(whole.last["object"] == "chat.completion");
  CHECK(whole.last["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  CHECK(whole.last["choices"][0]["message"]["role"] == "assistant");
  CHECK(whole.last["usage"]["prompt_tokens"] == ids.size());
  CHECK((whole.finish_reason == "stop" || whole.finish_reason == "length"));

  Completion streamed = complete(chat_body(messages, 12, true), s.port, "/v1/chat/completions");
  REQUIRE(streamed.status == 200);
  CHECK(streamed.done);
  CHECK(streamed.text == want);
  CHECK(streamed.last["object"] == "chat.completion.chunk");
  CHECK(streamed.finish_reason == whole.finish_reason);

  // Text parts are joined; max_completion_tokens is max_tokens's new name;
  // logprobs in the chat API's shape.
  json parts = chat_body(json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "It was"}]}])"), 1);
  parts.erase("max_tokens");
  parts["max_completion_tokens"] = 3;
  parts["logprobs"] = true;
  parts["top_logprobs"] = 2;
  Completion scored = complete(parts, s.port, "/v1/chat/completions");
  REQUIRE(scored.status == 200);
  const json& content = scored.last["choices"][0]["logprobs"]["content"];
  REQUIRE(content.size() == scored.last["usage"]["completion_tokens"].get<size_t>());
  REQUIRE(!content.empty());
  CHECK(content[0]["logprob"].get<double>() <= 0);
  CHECK(content[0]["top_logprobs"].size() == 2);
  CHECK(content[0]["top_logprobs"][0]["logprob"].get<double>() == Approx(content[0]["logprob"].get<double>()));
  CHECK(content[0]["bytes"].is_array());

  // The template's own refusal, and malformed chat bodies: 400s naming the field.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})", "messages"},
      {R"({"max_tokens": 4})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": [5]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": 7}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "a"}], "logprobs": 3})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]})", "tools"},
      {R"({"messages": [{"role": "user", "content": "a"}], "echo": true, "max_tokens": 0})", "max_tokens"},
  };
  auto c = s.client();
  for (const auto& [body, param] : bad) {
    INFO(body);
    auto res = c.Post("/v1/chat/completions", body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    const json j = json::parse(res->body);
    CHECK(j["error"]["param"] == param);
  }
  auto refused = c.Post("/v1/chat/completions", bad[0].first, "application/json");
  CHECK(json::parse(refused->body)["error"]["message"].get<std::string>().find("alternate") != std::string::npos);
  CHECK(complete(completion_body("The jury said", 2), s.port).status == 200);  // still serving
}

TEST_CASE("serve: a container keeps the chat template of the folder it came from", "[serve]") {
  ChatModel chat_model;
  test::TempDir out;
  auto folder = open_checkpoint(chat_model.dir.path());
  convert_to_container(*folder, out / "chat.h5", false, "serve_test");
  auto container = open_checkpoint(out / "chat.h5");
  REQUIRE(container->tokenizer_config());
  CHECK(*container->tokenizer_config() == *folder->tokenizer_config());
  const CheckpointChat chat = checkpoint_chat(*container, "chat");
  REQUIRE(chat.chat_template);
  CHECK(chat.chat_template->apply(json::parse(R"([{"role": "user", "content": "Hi"}])"), true) ==
        "<s>[INST] Hi [/INST]");
  // A folder whose template does not parse: refused with the reason, not a crash.
  std::ofstream(chat_model.dir / "tokenizer_config.json") << R"({"chat_template": "{% if %}"})";
  const CheckpointChat broken = checkpoint_chat(*open_checkpoint(chat_model.dir.path()), "broken");
  CHECK_FALSE(broken.chat_template);
  CHECK(broken.refusal.find("tokenizer_config.json") != std::string::npos);
}

TEST_CASE("serve: --chat-template gives a checkpoint without one a chat template", "[serve]") {
  TestServer s;
  const fs::path file = fs::path(MOEC_SOURCE_DIR) / "tests/data/chat_templates/mistralai-Mixtral-8x7B-Instruct-v0.1.jinja";
  CheckpointChat chat = chat_from_file(file, *s.source, s.tokenizer);
  REQUIRE(chat.chat_template);
  CHECK(chat.chat_template->bos_token() == "<s>");  // the fixture has no tokenizer_config.json: the tokenizer's pieces
  CHECK(chat.chat_template->eos_token() == "</s>");
  s.server->serve_model(s.model, s.tokenizer, "tiny", std::move(chat));
  const json messages = json::parse(R"([{"role": "user", "content": "The jury said"}])");
  Completion c = complete(chat_body(messages, 4), s.port, "/v1/chat/completions");
  REQUIRE(c.status == 200);
  CHECK(c.last["usage"]["prompt_tokens"] == s.tokenizer.encode_with_specials("<s>[INST] The jury said [/INST]").size());
  // A file that is missing or does not parse: an error naming it.
  CHECK_THROWS_WITH(chat_from_file("/nonexistent/t.jinja", *s.source, s.tokenizer), Catch::Contains("/nonexistent/t.jinja"));
  test::TempDir dir;
  std::ofstream(dir / "bad.jinja") << "{% for %}";
  CHECK_THROWS_WITH(chat_from_file(dir / "bad.jinja", *s.source, s.tokenizer), Catch::Contains("bad.jinja"));
}
