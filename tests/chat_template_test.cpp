// serve/jinja.h and serve/chat_template.h against Python's jinja2 in the
// environment transformers' apply_chat_template uses: real chat templates of
// public checkpoints over several conversations, and one case per Jinja
// feature (tests/data/chat_templates/reference.json, written by
// render_reference.py there).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "model/bpe_tokenizer.h"
#include "model/tokenizer.h"
#include "serve/chat_template.h"
#include "serve/jinja.h"
#include "tests/test_paths.h"

using moec::ChatTemplate;
using moec::JinjaError;
using moec::JinjaTemplate;
using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(MOEC_SOURCE_DIR) + "/tests/data/chat_templates/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const Json& reference() {
  static const Json r = Json::parse(read_text(kDir + "reference.json"));
  return r;
}

// Python's error text starts with its exception type; raise_exception's is
// the template's own message, which moec reports as is.
std::string raised_message(const std::string& error) {
  const std::string prefix = "TemplateError: ";
  return error.rfind(prefix, 0) == 0 ? error.substr(prefix.size()) : "";
}

void check(const JinjaTemplate& t, const Json& variables, const Json& expected, const std::string& what) {
  INFO(what);
  if (expected.contains("output")) {
    std::string got;
    try {
      got = t.render(variables);
    } catch (const JinjaError& e) {
      FAIL("threw: " << e.what());
    }
    CHECK(got == expected["output"].get<std::string>());
    return;
  }
  const std::string error = expected["error"].get<std::string>();
  INFO("jinja2 raised: " << error);
  try {
    t.render(variables);
    FAIL("rendered where jinja2 raised");
  } catch (const JinjaError& e) {
    if (const std::string m = raised_message(error); !m.empty()) CHECK(std::string(e.what()) == m);
  }
}

}  // namespace

TEST_CASE("chat templates of public checkpoints render as jinja2 renders them", "[chat_template]") {
  const Json& r = reference();
  REQUIRE(r["templates"].size() >= 100);
  int rendered = 0;
  for (const Json& entry : r["templates"]) {
    const std::string name = entry["template"].get<std::string>();
    const JinjaTemplate t(read_text(kDir + name + ".jinja"));
    Json variables = Json::object();
    for (const char* key : {"bos_token", "eos_token"})
      if (entry.contains(key) && entry[key].is_string()) variables[key] = entry[key];
    variables["messages"] = r["conversations"][entry["conversation"].get<std::string>()];
    variables["add_generation_prompt"] = entry["add_generation_prompt"];
    variables["date_string"] = r["date"];  // strftime_now's day in the reference
    check(t, variables, entry,
          name + " conversation " + entry["conversation"].get<std::string>() +
              (entry["add_generation_prompt"].get<bool>() ? " +generation prompt" : ""));
    rendered += entry.contains("output");
  }
  CHECK(rendered >= 100);
}

TEST_CASE("each supported Jinja feature renders as jinja2 renders it", "[chat_template]") {
  const Json features = Json::parse(read_text(kDir + "features.json"));
  const Json& expected = reference()["features"];
  REQUIRE(features.size() == expected.size());
  for (size_t i = 0; i < features.size(); ++i) {
    const std::string name = features[i]["name"].get<std::string>();
    INFO(name);
    REQUIRE(expected[i]["name"] == name);
    const JinjaTemplate t(features[i]["template"].get<std::string>());
    check(t, features[i]["variables"], expected[i], name);
  }
}

TEST_CASE("bad templates fail to parse with the line, never crash", "[chat_template]") {
  const char* bad[] = {"{% if x %}never closed", "{{ 1 + }}", "{% for in x %}{% endfor %}", "{{ 'open }}",
                       "{% unknown_tag %}", "{{ x | }}", "{{ (((1 }}", "{% endif %}", "{{ a[1:2:3:4] }}",
                       "{% set %}", "{{ x", "{% macro m( %}{% endmacro %}", "{{ v | tojson [] }}", "{{ x[] }}"};
  for (const char* source : bad) {
    INFO(source);
    CHECK_THROWS_AS(JinjaTemplate(source), JinjaError);
  }
  try {
    JinjaTemplate("line one\n{% if %}");
    FAIL("parsed");
  } catch (const JinjaError& e) {
    CHECK(std::string(e.what()).find("line 2") != std::string::npos);
  }
  CHECK_THROWS_AS(JinjaTemplate("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), JinjaError);  // depth bound
}

TEST_CASE("rendering is bounded: runaway loops and huge output stop with an error", "[chat_template]") {
  CHECK_THROWS_AS(JinjaTemplate("{% for i in range(100000000) %}{% endfor %}").render(Json::object()), JinjaError);
  CHECK_THROWS_AS(JinjaTemplate("{% for i in range(3000000) %}{{ 'xxxxxxxxxx' }}{% endfor %}").render(Json::object()),
                  JinjaError);
  CHECK_THROWS_AS(JinjaTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").render(Json::object()),
                  JinjaError);
  CHECK_THROWS_AS(JinjaTemplate("{{ 'x' * 100000000 }}").render(Json::object()), JinjaError);
  CHECK_THROWS_AS(JinjaTemplate("{{ 1 // 0 }}").render(Json::object()), JinjaError);
  CHECK_THROWS_AS(JinjaTemplate("{{ nothing.attr }}").render(Json::object()), JinjaError);
  // Reading a large variable in a loop copies nothing (Qwen3's template reads
  // `messages | length` in its message loop)...
  CHECK(JinjaTemplate("{% set a = range(20000) %}{% for i in a %}{% if a | length > a[i] + a[0] %}{% endif %}"
                      "{% endfor %}{{ a | length }}")
            .render(Json::object()) == "20000");
  // ...and a loop that does copy one every time is charged for the copies:
  // 20,000 copies of 20,000 items would be 4·10^8 within 60,000 steps.
  CHECK_THROWS_WITH(JinjaTemplate("{% set a = range(20000) %}{% for i in a %}{% set b = a %}{% endfor %}")
                        .render(Json::object()),
                    Catch::Contains("over 4000000 steps"));
  // Fuzzing found nested loops spending seconds inside the bounds; they end
  // at the output bound now, within a fraction of that.
  CHECK_THROWS_WITH(JinjaTemplate("{% for i in range(1659) %}{t.la{% for i in range(1659) %}{t.last }}18) %}{t.last "
                                  "}}{% endfor %}st }}18) %}{t.last }}{% endfor %}")
                        .render(Json::object()),
                    Catch::Contains("the rendered text is over 16777216 bytes"));
}

TEST_CASE("rendering is bounded: strings and lists that double, replacements that grow", "[chat_template]") {
  const Json none = Json::object();
  CHECK_THROWS_WITH(JinjaTemplate("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
                                  "{% endfor %}")
                        .render(none),
                    Catch::Contains("a string is over 16777216 bytes"));
  CHECK_THROWS_WITH(JinjaTemplate("{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = ns.a + ns.a %}"
                                  "{% endfor %}")
                        .render(none),
                    Catch::Contains("over 4000000 steps"));
  // A replacement is built in one pass (in place it took minutes for this)
  // and refused before it is built when it would be too long.
  CHECK(JinjaTemplate("{{ ('x' * 1000000) | replace('x', 'yy') }}").render(none) == std::string(2000000, 'y'));
  CHECK(JinjaTemplate("{{ 'a-b-c'.replace('-', '+', 1) }}{{ 'a-b-c' | replace('-', '') }}").render(none) == "a+b-cabc");
  CHECK_THROWS_WITH(JinjaTemplate("{{ ('x' * 1000000) | replace('x', 'y' * 100) }}").render(none),
                    Catch::Contains("a replaced string is over 16777216 bytes"));
  // Strings index and count by code point (as jinja2 3.1 renders this).
  CHECK(JinjaTemplate("{{ 'h\u00e9llo'[1] }}{{ 'h\u00e9llo' | length }}{{ 'h\u00e9llo'[-1] }}"
                      "{{ 'a\u00e9\u20acx'.find('x') }}{{ '\u20ac'[0] }}{{ 'ab'[5] is undefined }}")
            .render(none) == "\u00e95o3\u20acTrue");
  // Reading a large string item by item is charged for what each read scans.
  CHECK_THROWS_WITH(JinjaTemplate("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}")
                        .render(none),
                    Catch::Contains("over 4000000 steps"));
}

TEST_CASE("rendering limits are the caller's", "[chat_template]") {
  const JinjaTemplate t("{% for i in range(100) %}xy{% endfor %}");
  std::string want;
  for (int i = 0; i < 100; ++i) want += "xy";
  CHECK(t.render(Json::object()) == want);
  CHECK_THROWS_WITH(t.render(Json::object(), {50, size_t(1) << 20}), Catch::Contains("over 50 steps"));
  CHECK_THROWS_WITH(t.render(Json::object(), {1000, 150}), Catch::Contains("the rendered text is over 150 bytes"));
  CHECK_THROWS_WITH(JinjaTemplate("{{ 'ab' * 100 }}").render(Json::object(), {1000, 150}),
                    Catch::Contains("a repeated string is over 150 bytes"));
}

// Expected strings as jinja2 3.1 renders them (trim_blocks, lstrip_blocks).
TEST_CASE("loop variables, item after item, and what the body sets stays in its iteration", "[chat_template]") {
  const std::string each = "{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}"
                           "{{ loop.last }}{{ loop.length }}{{ loop.previtem | default('-') }}"
                           "{{ loop.nextitem | default('-') }};";
  CHECK(JinjaTemplate("{% for x in ['a', 'b', 'c', 'd'] %}" + each + "{% endfor %}").render(Json::object()) ==
        "1043TrueFalse4-b;2132FalseFalse4ac;3221FalseFalse4bd;4310FalseTrue4c-;");
  CHECK(JinjaTemplate("{% for x in [1, 2, 3] %}{% if loop.first %}{% set y = 5 %}{% endif %}{{ y | default('u') }}"
                      "{% endfor %}")
            .render(Json::object()) == "5uu");
  // The body replacing a loop variable does not carry over (as jinja2 3.1 renders it).
  CHECK(JinjaTemplate("{% for x in [1, 2, 3] %}{{ x }}{{ loop.index }}{% set x = 9 %}{{ x }}{% endfor %}")
            .render(Json::object()) == "119229339");
  // Nested loops over the same name keep their own variables.
  CHECK(JinjaTemplate("{% for i in [1, 2] %}{% for i in [7, 8, 9] %}{{ i }}{{ loop.length }}{% endfor %}{{ i }}"
                      "{{ loop.length }}|{% endfor %}")
            .render(Json::object()) == "738393" "12|738393" "22|");
}

TEST_CASE("tokenizer_config.json: template forms and special tokens", "[chat_template]") {
  const std::string mixtral = read_text(kDir + "mistralai-Mixtral-8x7B-Instruct-v0.1.jinja");
  Json config = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}}, {"eos_token", "</s>"},
                 {"chat_template", mixtral}};
  auto t = ChatTemplate::from_tokenizer_config(config.dump(), "tokenizer_config.json");
  REQUIRE(t);
  CHECK(t->bos_token() == "<s>");
  CHECK(t->eos_token() == "</s>");
  const Json messages = Json::parse(R"([{"role": "user", "content": "Hi"}])");
  CHECK(t->apply(messages, true) == "<s>[INST] Hi [/INST]");
  // A list of named templates: the "default" one.
  config["chat_template"] = Json::array({{{"name", "tool_use"}, {"template", "tools"}},
                                         {{"name", "default"}, {"template", "{{ messages[0].content }}!"}}});
  t = ChatTemplate::from_tokenizer_config(config.dump(), "x");
  REQUIRE(t);
  CHECK(t->apply(messages, false) == "Hi!");
  // No template; null template.
  CHECK_FALSE(ChatTemplate::from_tokenizer_config(R"({"eos_token": "</s>"})", "x"));
  CHECK_FALSE(ChatTemplate::from_tokenizer_config(R"({"chat_template": null})", "x"));
  // Errors name the file.
  for (const char* bad : {"not json", "[1]", R"({"chat_template": 5})", R"({"chat_template": "{% if %}"})",
                          R"({"chat_template": [{"name": "other", "template": "x"}]})"}) {
    INFO(bad);
    try {
      ChatTemplate::from_tokenizer_config(bad, "dir/tokenizer_config.json");
      FAIL("accepted");
    } catch (const moec::Error& e) {
      CHECK(std::string(e.what()).find("dir/tokenizer_config.json") != std::string::npos);
    }
  }
  // The template's own error, as the caller sees it.
  config["chat_template"] = mixtral;
  t = ChatTemplate::from_tokenizer_config(config.dump(), "x");
  const Json two_users = Json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  CHECK_THROWS_AS(t->apply(two_users, true), JinjaError);
}

TEST_CASE("a byte-level BPE checkpoint's chat prompt: special tokens written out become their ids", "[chat_template]") {
  const fs::path dir = moec::test::fixtures_dir() / "tokenizers" / "bpe-qwen2-style";
  if (!fs::exists(dir / "tokenizer.json")) {
    WARN("tokenizer fixtures need ../shared/fixtures/tokenizers; skipped");
    return;
  }
  const moec::Tokenizer tokenizer(moec::BpeTokenizer(read_text((dir / "tokenizer.json").string()), "tokenizer.json"));
  Json config = Json::parse(read_text((dir / "tokenizer_config.json").string()));
  config["chat_template"] = read_text(kDir + "Qwen-Qwen2.5-7B-Instruct.jinja");
  auto t = ChatTemplate::from_tokenizer_config(config.dump(), "tokenizer_config.json");
  REQUIRE(t);
  CHECK(t->eos_token() == "<|im_end|>");
  CHECK(t->bos_token().empty());  // null in the config
  const std::string prompt = t->apply(Json::parse(R"([{"role": "user", "content": "Hi there"}])"), true);
  CHECK(prompt.rfind("<|im_start|>system\n", 0) == 0);
  const std::vector<int32_t> ids = tokenizer.encode_with_specials(prompt);
  const int32_t start = tokenizer.special_id("<|im_start|>"), end = tokenizer.special_id("<|im_end|>");
  CHECK(start == 4097);
  CHECK(end == 4098);
  CHECK(std::count(ids.begin(), ids.end(), start) == 3);  // system, user, the generation prompt
  CHECK(std::count(ids.begin(), ids.end(), end) == 2);
  CHECK(ids.front() == start);
  CHECK(tokenizer.special_id("Hi") == -1);
  CHECK(tokenizer.decode(ids) == prompt);
}
