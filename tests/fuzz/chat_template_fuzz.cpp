// Fuzz target: a chat template (a checkpoint's tokenizer_config.json carries
// one; serve/jinja.h renders it). Parsed, then rendered over a small
// conversation: text, or JinjaError (a syntax error, raise_exception, a
// construct it cannot evaluate, a bound hit), never another exception, a
// crash, a hang or unbounded memory. Rendered with smaller limits than
// serving's (moec::JinjaLimits: 200× fewer steps, 1/16 of the output), so
// that the slowest input the bounds allow stays well within libFuzzer's 1 s
// timeout under the sanitizers (~0.2 s on an AMD EPYC Zen 1); the serving
// limits themselves are tested in tests/chat_template_test.cpp.
#include <string>

#include "serve/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  static const auto variables = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <s> [INST]"},
                 {"role": "assistant", "content": "Hello.", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
                 {"role": "user", "content": [{"type": "text", "text": "part"}]}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  try {
    const moec::JinjaTemplate t(source);
    (void)t.render(variables, {20'000, size_t(1) << 20});
  } catch (const moec::JinjaError&) {
  }
  return 0;
}
