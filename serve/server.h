// `moec serve`: an OpenAI-compatible HTTP server (cpp-httplib) over the
// continuous-batching engine (serve/engine.h).
//
//   POST /v1/completions       completions, streamed as server-sent events
//                              ("data: {...}" chunks, then "data: [DONE]")
//                              or in one JSON body (serve/openai_api.h)
//   POST /v1/chat/completions  chat completions with the checkpoint's chat
//                              template (serve/chat_template.h), streamed
//                              as "chat.completion.chunk" deltas or in one
//                              body; 400 when the checkpoint has none
//   GET  /v1/models            the served model (/v1/models/ID: it, or 404)
//   GET  /health               503 while the model loads, then 200
//   GET  /metrics              Prometheus text (serve/metrics.h)
// Every error is an OpenAI error object with a fitting status: 400 bad
// request, 401 missing/wrong API key (all but /health), 404 unknown path, 405
// wrong method, 413 body over the limit, 429 every slot and the queue taken,
// 503 loading or shutting down.
//
// HTTP threads: each request holds one while it waits for its tokens, so
// there are enough for every slot and queued request plus a few for
// /health and /metrics.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "serve/chat_template.h"
#include "serve/engine.h"
#include "serve/metrics.h"

namespace moec {

class Model;
class Tokenizer;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (bind() says which)
  std::string api_key;  // empty: no authentication
  size_t max_body_bytes = size_t(1) << 20;
  EngineOptions engine;
  int http_threads = 0;  // 0: parallel + max_queue + 8
};

class Server {
 public:
  explicit Server(const ServerOptions& options);
  ~Server();
  // Listens on host:port; returns the port. Errors name the address.
  int bind();
  // Starts serving `model` (until then /health is 503 and the API answers
  // 503 "loading"). `chat`: the checkpoint's chat template, or why
  // /v1/chat/completions is refused (serve/chat_template.h).
  void serve_model(Model& model, const Tokenizer& tokenizer, const std::string& model_name, CheckpointChat chat);
  // Accepts connections until stop(); call after bind().
  void run();
  // From any thread (a signal watcher): stops taking requests, fails the
  // running and queued ones with 503, and makes run() return.
  void stop();
  ServeMetrics& metrics();
  // The engine, once serving (null before).
  Engine* engine();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moec
