#include "serve/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <chrono>
#include <ctime>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "model/generate.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "serve/chat_template.h"
#include "serve/completion.h"
#include "serve/openai_api.h"

namespace moec {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void reply_error(httplib::Response& res, const ApiError& e) { reply(res, e.status, error_body(e)); }

ApiError server_error(int status, const std::string& message, const std::string& type, const std::string& code) {
  ApiError e;
  e.status = status;
  e.message = message;
  e.type = type;
  e.code = code;
  return e;
}

bool same_secret(const std::string& a, const std::string& b) {  // constant time in the content
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// cpp-httplib 0.11 listens with a backlog of 5 (compiled into Debian's
// library): a burst of new connections overflows it and the kernel drops
// SYNs, which clients retry only after a second (seen as 1 s time-to-first-
// token spikes with 16 clients). Calling listen() again on the bound socket
// raises the backlog; the socket is found by its port among our descriptors.
void raise_listen_backlog(int port) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    int listening = 0;
    socklen_t size = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) continue;
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    int bound = -1;
    if (address.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    if (address.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

const char* kEndpoints[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"};

std::string endpoint_label(const std::string& path) {
  for (const char* e : kEndpoints)
    if (path == e) return e;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";  // one model by id
  return "other";
}

}  // namespace

// One completion request, shared by its handler and (streaming) the content
// provider that outlives the handler.
struct CompletionCall {
  CompletionCall(const Tokenizer& tokenizer, std::vector<int32_t> fed, bool bos_added,
                 std::optional<std::string> prompt_text, const CompletionRequest& r,
                 std::shared_ptr<JobChannel> channel, ServeMetrics& metrics, Clock::time_point received,
                 std::string id, std::string model)
      : request(r),
        assembler(tokenizer, fed, bos_added, std::move(prompt_text), r.stop, r.logprobs.has_value()),
        channel(std::move(channel)),
        metrics(metrics),
        received(received),
        id(std::move(id)),
        model(std::move(model)),
        prompt_tokens(int64_t(fed.size())) {}

  // The next thing to send: pieces of text, then the end. Returns false at
  // the end (finish_reason or error set).
  bool next(CompletionPiece& piece) {
    if (!finish_reason.empty()) return false;  // a stop sequence ended it (the job is cancelled)
    for (;;) {
      auto event = channel->next(std::chrono::milliseconds(250));
      if (!event) {
        if (channel->cancelled()) return end_with_error(server_error(503, "the request was cancelled", "server_error", "cancelled"));
        continue;
      }
      switch (event->kind) {
        case JobEvent::Kind::PromptLogprobs:
          if (request.echo) {
            piece = assembler.echo(&event->prompt);
            echoed = true;
            return true;
          }
          continue;
        case JobEvent::Kind::Token: {
          const auto now = Clock::now();
          if (!first_token) {
            metrics.time_to_first_token(seconds_between(received, now));
            first_token = true;
          } else {
            metrics.inter_token_latency(seconds_between(last_token, now));
          }
          last_token = now;
          piece = echo_first();
          CompletionPiece more = assembler.token(event->token, event->logprob);
          piece.text += more.text;
          piece.logprobs.append(more.logprobs);
          if (assembler.stopped()) {
            channel->cancel();  // the engine frees the slot at its next step
            finish_reason = "stop";
          }
          return true;
        }
        case JobEvent::Kind::Finished:
          piece = echo_first();
          {
            CompletionPiece rest = assembler.finish();
            piece.text += rest.text;
          }
          finish_reason = event->finish_reason;
          return true;  // the held-back text (maybe none); the next call ends
        case JobEvent::Kind::Failed:
          return end_with_error(server_error(int(event->status), event->error, "server_error", "engine_failed"));
      }
    }
  }
  bool done() const { return !finish_reason.empty() || error.has_value(); }

  json usage() const {
    const int64_t completion = assembler.completion_tokens();
    return json{{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion},
                {"total_tokens", prompt_tokens + completion}};
  }
  json choice(const CompletionPiece& piece, bool final) const {
    const json reason = final ? json(finish_reason) : json(nullptr);
    if (!chat)
      return json{{"text", piece.text},
                  {"index", index},
                  {"logprobs", request.logprobs ? piece.logprobs.to_json() : json(nullptr)},
                  {"finish_reason", reason}};
    const json logprobs = request.logprobs ? chat_logprobs(piece.logprobs) : json(nullptr);
    if (!request.stream)
      return json{{"index", index},
                  {"message", {{"role", "assistant"}, {"content", piece.text}}},
                  {"logprobs", logprobs},
                  {"finish_reason", reason}};
    json delta = json::object();  // the first chunk names the role; the last may carry nothing
    if (!role_sent) delta["role"] = "assistant";
    role_sent = true;
    if (!final || !piece.text.empty()) delta["content"] = piece.text;
    return json{{"index", index}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", reason}};
  }
  json body(const json& choices) const {
    const char* object = !chat ? "text_completion" : request.stream ? "chat.completion.chunk" : "chat.completion";
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", choices}};
  }
  // The chat API's logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}.
  static json chat_logprobs(const LogprobsPart& part) {
    auto bytes = [](const std::string& s) {
      json b = json::array();
      for (unsigned char c : s) b.push_back(int(c));
      return b;
    };
    json content = json::array();
    for (size_t i = 0; i < part.tokens.size(); ++i) {
      json top = json::array();
      if (i < part.top.size())
        for (const auto& [token, logprob] : part.top[i])
          top.push_back({{"token", token}, {"logprob", logprob}, {"bytes", bytes(token)}});
      content.push_back({{"token", part.tokens[i]},
                         {"logprob", part.token_logprobs[i] ? json(*part.token_logprobs[i]) : json(nullptr)},
                         {"bytes", bytes(part.tokens[i])},
                         {"top_logprobs", top}});
    }
    return json{{"content", content}};
  }

  CompletionRequest request;
  CompletionAssembler assembler;
  std::shared_ptr<JobChannel> channel;
  ServeMetrics& metrics;
  Clock::time_point received, last_token;
  std::string id, model;
  int64_t created = int64_t(std::time(nullptr));
  int64_t prompt_tokens;
  int64_t index = 0;  // the prompt's place in the request
  bool chat = false;  // a /v1/chat/completions call
  mutable bool role_sent = false;
  bool first_token = false, echoed = false, finished_stream = false;
  std::string finish_reason;
  std::optional<ApiError> error;

 private:
  // Echo without logprobs has no engine event of its own: the prompt's text
  // goes out with the first piece.
  CompletionPiece echo_first() {
    if (!request.echo || echoed) return {};
    echoed = true;
    return assembler.echo(nullptr);
  }
  bool end_with_error(ApiError e) {
    error = std::move(e);
    return false;
  }
};

struct Server::Impl {
  ServerOptions options;
  httplib::Server http;
  ServeMetrics metrics;
  std::unique_ptr<Engine> engine;
  std::atomic<bool> ready{false}, stopping{false};
  std::atomic<bool> running{false};  // inside run()
  Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  std::string model_name;
  CheckpointChat chat;
  std::vector<int32_t> chat_stop_tokens;  // EOS and the template's end-of-turn token
  std::atomic<uint64_t> next_id{1};
  CompletionLimits limits;

  explicit Impl(const ServerOptions& o) : options(o) {
    const int threads = o.http_threads > 0 ? o.http_threads : int(o.engine.parallel + o.engine.max_queue + 8);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    http.set_payload_max_length(o.max_body_bytes);
    http.set_keep_alive_max_count(1000);  // clients reuse their connection (httplib's default is 5 requests)
    // CORS, as llama-server and vLLM allow by default: browser clients (web
    // UIs on another origin) may call the API; a preflight OPTIONS is
    // answered before authorization (browsers send it without credentials).
    http.set_default_headers({{"Access-Control-Allow-Origin", "*"}});
    http.Options(R"(.*)", [](const httplib::Request&, httplib::Response& res) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "86400");
    });
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;
      return authorize(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                 : httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) { fill_error(req, res); });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      reply_error(res, server_error(500, what, "server_error", "internal_error"));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.request(endpoint_label(req.path), res.status);
    });
    routes();
  }

  bool authorize(const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health") return true;
    const std::string header = req.get_header_value("Authorization");
    if (same_secret(header, "Bearer " + options.api_key)) return true;
    ApiError e = server_error(401,
                              header.empty() ? "no API key: send the header 'Authorization: Bearer KEY'"
                                             : "the API key in the Authorization header is not the server's",
                              "invalid_request_error", "invalid_api_key");
    reply_error(res, e);
    return false;
  }

  void fill_error(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message;
    switch (res.status) {
      case 404: message = fmt::format("no such endpoint: {} {}", req.method, req.path); break;
      case 413: message = fmt::format("the request body is larger than {} bytes", options.max_body_bytes); break;
      case 400: message = "malformed HTTP request"; break;
      default: message = fmt::format("HTTP {}", res.status);
    }
    reply_error(res, server_error(res.status, message, "invalid_request_error", std::to_string(res.status)));
  }

  // Every other method on a known path: 405.
  json model_object() const {
    return json{{"id", model_name},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "moec"},
                {"meta", {{"ctx", engine->ctx()}, {"parallel", engine->parallel()}}}};
  }

  void refuse_methods(const std::string& path, const std::string& allowed) {
    auto handler = [path, allowed](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allowed);
      reply_error(res, server_error(405, fmt::format("{} does not accept {}; use {}", path, req.method, allowed),
                                    "invalid_request_error", "method_not_allowed"));
    };
    if (allowed != "GET") http.Get(path, handler);
    if (allowed != "POST") http.Post(path, handler);
    http.Put(path, handler);
    http.Delete(path, handler);
    http.Patch(path, handler);
  }

  bool check_ready(httplib::Response& res) {
    if (ready) return true;
    if (stopping)
      reply_error(res, server_error(503, "the server is shutting down", "server_error", "shutting_down"));
    else
      reply_error(res, server_error(503, "the model is loading; retry when GET /health answers 200", "server_error",
                                    "loading"));
    return false;
  }

  void routes() {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      reply(res, ready ? 200 : 503, json{{"status", ready ? "ok" : stopping ? "shutting down" : "loading"}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const Engine::Load load = engine && ready ? engine->load() : Engine::Load{};
      res.set_content(metrics.render(load.active, load.queued), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      if (!check_ready(res)) return;
      reply(res, 200, json{{"object", "list"}, {"data", json::array({model_object()})}});
    });
    // One model by id (the OpenAI clients' models.retrieve).
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!check_ready(res)) return;
      const std::string id = req.matches[1];
      if (id == model_name) return reply(res, 200, model_object());
      ApiError e = server_error(404, fmt::format("the model '{}' does not exist; this server serves '{}'", id, model_name),
                                "invalid_request_error", "model_not_found");
      e.param = "model";
      reply_error(res, e);
    });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { chat_completions(req, res); });
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { completions(req, res); });
    refuse_methods("/v1/completions", "POST");
    refuse_methods("/v1/chat/completions", "POST");
    refuse_methods("/v1/models", "GET");
    refuse_methods("/health", "GET");
    refuse_methods("/metrics", "GET");
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    const auto received = Clock::now();
    if (!check_ready(res)) return;
    auto parsed = parse_completion_request(req.body, limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return reply_error(res, *e);
    const CompletionRequest& r = std::get<CompletionRequest>(parsed);
    // Every prompt tokenized and checked before any is queued.
    // Text prompts as `moec generate` reads them (Tokenizer::encode_prompt).
    const bool with_bos = tokenizer->bos_id() >= 0;
    std::vector<std::vector<int32_t>> feds;
    for (const PromptInput& p : r.prompts) {
      std::vector<int32_t> fed = p.text ? tokenizer->encode_prompt(*p.text, model->config().bos_token_id) : p.ids;
      if (fed.empty()) {
        ApiError e;
        e.message = "the prompt is empty (it has no tokens)";
        e.param = "prompt";
        e.code = "invalid_value";
        return reply_error(res, e);
      }
      if (auto e = check_context(int64_t(fed.size()), r, limits)) return reply_error(res, *e);
      feds.push_back(std::move(fed));
    }
    std::vector<bool> bos_added;
    for (const PromptInput& p : r.prompts) bos_added.push_back(p.text.has_value() && with_bos);
    start(r, std::move(feds), bos_added, false, received, res);
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const auto received = Clock::now();
    if (!check_ready(res)) return;
    if (!chat.chat_template) {
      ApiError e;
      e.message = chat.refusal;
      e.code = "no_chat_template";
      return reply_error(res, e);
    }
    auto parsed = parse_chat_request(req.body, limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return reply_error(res, *e);
    ChatRequest& c = std::get<ChatRequest>(parsed);
    std::vector<int32_t> fed;
    try {
      fed = tokenizer->encode_with_specials(chat.chat_template->apply(c.messages, true));
    } catch (const JinjaError& error) {
      ApiError e;
      e.message = fmt::format("the model's chat template does not accept these messages: {}", error.what());
      e.param = "messages";
      e.code = "chat_template_error";
      return reply_error(res, e);
    }
    if (fed.empty()) {
      ApiError e;
      e.message = "the chat template made an empty prompt of these messages";
      e.param = "messages";
      return reply_error(res, e);
    }
    if (auto e = check_context(int64_t(fed.size()), c.completion, limits)) return reply_error(res, *e);
    std::vector<std::vector<int32_t>> feds;
    feds.push_back(std::move(fed));
    start(c.completion, std::move(feds), {false}, true, received, res);
  }

  // Queues one job per prompt and answers (a stream or one body).
  void start(const CompletionRequest& r, std::vector<std::vector<int32_t>> feds, const std::vector<bool>& bos_added,
             bool chat_call, Clock::time_point received, httplib::Response& res) {
    const std::string id = fmt::format("{}-{:x}", chat_call ? "chatcmpl" : "cmpl", next_id++);
    const uint64_t seed = r.seed ? *r.seed : std::random_device{}();
    std::vector<std::shared_ptr<CompletionCall>> calls;
    for (size_t i = 0; i < feds.size(); ++i) {
      CompletionJob job;
      job.prompt = feds[i];
      job.max_tokens = r.max_tokens;
      job.sampling.temperature = r.temperature;
      job.sampling.top_p = r.top_p;
      job.sampling.seed = seed + i;
      job.sampling.vocab_limit = tokenizer->vocab_size();  // ids without a piece are never sampled
      if (!r.ignore_eos)
        job.stop_tokens = chat_call ? chat_stop_tokens : eos_tokens(model->config());
      job.top_logprobs = r.logprobs ? *r.logprobs : -1;
      job.echo = r.echo;
      auto channel = engine->submit(std::move(job));
      if (!channel) {
        for (auto& c : calls) c->channel->cancel();
        const Engine::Load load = engine->load();
        return reply_error(res, server_error(429,
                                             fmt::format("the server is busy: {} sequences running and {} queued "
                                                         "(--parallel {}, --max-queue {}); retry later",
                                                         load.active, load.queued, options.engine.parallel,
                                                         options.engine.max_queue),
                                             "server_busy_error", "server_busy"));
      }
      calls.push_back(std::make_shared<CompletionCall>(*tokenizer, std::move(feds[i]), bos_added[i],
                                                       chat_call ? std::nullopt : r.prompts[i].text, r, channel,
                                                       metrics, received, id, model_name));
      calls.back()->index = int64_t(i);
      calls.back()->chat = chat_call;
    }
    if (r.stream)
      stream(calls.front(), res);
    else
      whole(calls, res);
  }

  // Waits for every prompt's completion; one body with a choice per prompt.
  static void whole(const std::vector<std::shared_ptr<CompletionCall>>& calls, httplib::Response& res) {
    json choices = json::array();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const auto& call : calls) {
      CompletionPiece piece;
      while (call->next(piece)) {
      }
      if (call->error) {
        for (const auto& c : calls) c->channel->cancel();
        return reply_error(res, *call->error);
      }
      choices.push_back(call->choice(call->assembler.whole(), true));
      prompt_tokens += call->prompt_tokens;
      completion_tokens += call->assembler.completion_tokens();
    }
    json body = calls.front()->body(choices);
    body["usage"] = {{"prompt_tokens", prompt_tokens},
                     {"completion_tokens", completion_tokens},
                     {"total_tokens", prompt_tokens + completion_tokens}};
    reply(res, 200, body);
  }

  static void stream(const std::shared_ptr<CompletionCall>& call, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [call](size_t, httplib::DataSink& sink) {
          auto send = [&](const json& j) {
            const std::string line = "data: " + dump(j) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          CompletionPiece piece;
          const bool more = call->next(piece);
          if (!piece.empty() && !send(call->body(json::array({call->choice(piece, false)})))) return false;
          if (more) return true;  // client gone: false above ends the connection, and the job
          if (call->error) {
            send(error_body(*call->error));
          } else {
            send(call->body(json::array({call->choice(CompletionPiece{}, true)})));
            if (call->request.include_usage) {
              json usage = call->body(json::array());
              usage["usage"] = call->usage();
              send(usage);
            }
          }
          const std::string done = "data: [DONE]\n\n";
          sink.write(done.data(), done.size());
          sink.done();
          return true;
        },
        [call](bool) { call->channel->cancel(); });  // ended, failed or disconnected: free the slot
  }
};

Server::Server(const ServerOptions& options) : impl_(std::make_unique<Impl>(options)) {}

Server::~Server() { stop(); }

int Server::bind() {
  const ServerOptions& o = impl_->options;
  int port = o.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) throw std::runtime_error(fmt::format("cannot listen on {} (any port)", o.host));
  } else if (!impl_->http.bind_to_port(o.host, o.port)) {
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", o.host, o.port));
  }
  raise_listen_backlog(port);
  return port;
}

void Server::serve_model(Model& model, const Tokenizer& tokenizer, const std::string& model_name,
                         CheckpointChat chat) {
  Impl& s = *impl_;
  s.model = &model;
  s.tokenizer = &tokenizer;
  s.model_name = model_name;
  s.chat = std::move(chat);
  s.chat_stop_tokens = eos_tokens(model.config());
  if (s.chat.chat_template) {
    const int32_t end_of_turn = tokenizer.special_id(s.chat.chat_template->eos_token());
    if (end_of_turn >= 0 && std::find(s.chat_stop_tokens.begin(), s.chat_stop_tokens.end(), end_of_turn) ==
                                s.chat_stop_tokens.end())
      s.chat_stop_tokens.push_back(end_of_turn);
  }
  s.engine = std::make_unique<Engine>(model, s.options.engine, &s.metrics);
  s.limits = {model.config().vocab_size, s.engine->ctx()};
  if (!s.stopping) s.ready = true;
}

void Server::run() {
  impl_->running = true;
  if (!impl_->stopping) impl_->http.listen_after_bind();
  impl_->running = false;
}

void Server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->ready = false;
  if (impl_->engine) impl_->engine->shutdown();
  // httplib's stop() does nothing until the accept loop has started: repeat
  // it while run() is inside (a stop right after bind(), e.g. when the model
  // fails to load, must not leave run() listening forever).
  impl_->http.stop();
  while (impl_->running) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    impl_->http.stop();
  }
}

ServeMetrics& Server::metrics() { return impl_->metrics; }

Engine* Server::engine() { return impl_->engine.get(); }

}  // namespace moec
