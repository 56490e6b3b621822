// moec serve: the OpenAI-compatible server (serve/server.h).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/error.h"
#include "model/model.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "serve/server.h"

namespace moec::cli {
namespace {

namespace fs = std::filesystem;

struct ServeFlags {
  std::string model;
  std::string chat_template;  // a file; empty: the checkpoint's own
  ServerOptions server;
  int threads = 0;
  int64_t expert_cache_mib = int64_t(Model::kDefaultExpertCacheBytes >> 20);
};

std::string model_name(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void run_serve(ServeFlags& f) {
  // SIGINT/SIGTERM go to one watcher thread (blocked everywhere else).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Server server(f.server);
  int port = 0;
  try {
    port = server.bind();
  } catch (const std::exception& e) {
    fail("{}", e.what());
  }
  std::thread http([&] { server.run(); });
  std::atomic<bool> stopping{false};
  std::thread watcher([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (!stopping.exchange(true))
      fmt::print(stderr, "moec serve: {} received, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  // Wakes the watcher when the server ends for another reason.
  auto stop_watcher = [&] {
    if (!stopping.exchange(true)) pthread_kill(watcher.native_handle(), SIGTERM);
  };
  fmt::print(stderr, "moec serve: listening on http://{}:{} (loading {})\n", f.server.host, port, f.model);
  std::string error;
  std::unique_ptr<CheckpointSource> source;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;
  try {
    source = open_checkpoint(f.model);
    tokenizer.emplace(Tokenizer::from_checkpoint(*source));
    pool = std::make_unique<ThreadPool>(f.threads);
    model = std::make_unique<Model>(*source, *pool);
    model->expert_cache().set_capacity(uint64_t(f.expert_cache_mib) << 20);
    const std::string name = model_name(f.model);
    CheckpointChat chat = f.chat_template.empty() ? checkpoint_chat(*source, name)
                                                  : chat_from_file(f.chat_template, *source, *tokenizer);
    if (!chat.chat_template) fmt::print(stderr, "moec serve: /v1/chat/completions is off: {}\n", chat.refusal);
    server.serve_model(*model, *tokenizer, name, std::move(chat));
    const Engine& engine = *server.engine();
    fmt::print(stderr, "moec serve: ready: model '{}', {} slots of {} tokens (KV cache {:.1f} MiB), {} threads ({} kernels)\n",
               name, engine.parallel(), engine.ctx(), double(engine.kv_cache_bytes()) / (1 << 20), pool->size(),
               isa_name(active_isa()));
  } catch (const std::exception& e) {
    error = e.what();
    stop_watcher();  // the watcher stops the server
  }
  http.join();
  stop_watcher();
  watcher.join();
  server.stop();
  if (!error.empty()) fail("{}", error);
  fmt::print(stderr, "moec serve: stopped\n");
}

}  // namespace

void add_serve_commands(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  cmd->add_option("model", f->model, "Model folder or .h5 container")->required();
  cmd->add_option("--host", f->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--chat-template", f->chat_template,
                  "Jinja chat template file for /v1/chat/completions (default: the checkpoint's own, if any)");
  cmd->add_option("--port", f->server.port, "Port (0: any free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--parallel", f->server.engine.parallel, "Sequences decoded together (KV cache slots)")
      ->check(CLI::Range(int64_t(1), int64_t(1024)))
      ->capture_default_str();
  cmd->add_option("--ctx", f->server.engine.ctx,
                  "Tokens per sequence, prompt and completion (0: the model's maximum, at most 4096)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24))
      ->capture_default_str();
  cmd->add_option("--max-queue", f->server.engine.max_queue, "Requests waiting for a slot before 429")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--api-key", f->server.api_key, "Require 'Authorization: Bearer KEY' (all but /health)");
  cmd->add_option("--max-body", f->server.max_body_bytes, "Largest request body in bytes (413 above)")
      ->check(CLI::Range(size_t(1024), size_t(1) << 30))
      ->capture_default_str();
  cmd->add_option("--threads", f->threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--expert-cache", f->expert_cache_mib, "MiB of sub1 experts kept decoded between steps")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30))
      ->capture_default_str();
  cmd->callback([f] { run_serve(*f); });
}

}  // namespace moec::cli
