// A Jinja2 subset, enough for the chat templates Hugging Face checkpoints
// carry in tokenizer_config.json (`chat_template`), rendered as transformers'
// apply_chat_template does: trim_blocks and lstrip_blocks on, loop controls
// (break/continue) on, no autoescape, `tojson` as Python's json.dumps.
//
// Why hand-written: Debian packages no C++ Jinja engine (inja is a different
// syntax: no namespace(), no str methods, no `is` tests), and chat templates
// need exactly those. Values are JSON (ordered, as Python dicts keep insertion
// order) plus "undefined".
//
// Supported:
//   {{ expr }}, {% stmt %}, {# comment #}, whitespace control `-` and `+`.
//   Statements: if/elif/else, for (tuple targets, `if` filter, else,
//     loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem),
//     set (name, ns.attr, and `{% set x %}...{% endset %}`), macro (positional
//     and keyword parameters with defaults), break, continue, and
//     `generation` blocks (rendered as their body).
//   Expressions: literals (strings, numbers, true/false/none in both cases,
//     lists, dicts, tuples), names, .attr, [index], [a:b:c] slices, calls,
//     `x if c else y`, or/and/not, == != < <= > >= in, `not in`, + - * / // %
//     **, ~ (concatenation), unary -.
//   Filters: trim, length/count, tojson, string, lower, upper, title,
//     capitalize, default/d, first, last, join, items, list, reverse, replace,
//     int, float, abs, round, selectattr/rejectattr, map(attribute=), unique,
//     sort, safe, indent, wordcount, batch-free basics.
//   Tests: defined, undefined, none, string, number, integer, float, boolean,
//     mapping, iterable, sequence, true, false, odd, even, divisibleby,
//     equalto/eq/==, ne, lower, upper, in.
//   Methods: str strip/lstrip/rstrip/startswith/endswith/split/rsplit/upper/
//     lower/title/capitalize/replace/find/count/join/format-free;
//     dict items/keys/values/get; list index/count.
//   Globals: range, namespace, dict, raise_exception, strftime_now (callers
//     may pass their own values for any name).
// A template that uses anything else fails to parse (JinjaError at
// construction) or to render (JinjaError from render), naming the construct
// and its line; never undefined behaviour. Rendering is bounded (steps,
// output size, recursion) so a hostile template cannot hang the server.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace moec {

class JinjaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How much one render may do before it fails with JinjaError. Steps count
// statements, loop iterations, calls, range() items, and the size of every
// value an expression makes (one step per 4 items of an array or object,
// nested ones included, and per KiB of string; the subject of ., [], a
// filter, a test or a method is read in place, a string one charged a step
// per 64 bytes for what reading it may scan). output_bytes
// bounds the rendered text and every string an expression makes. The
// defaults render the 15 public templates tested over conversations well
// past the server's default 1 MiB request body (Qwen3's, 40,000 messages,
// in 0.45 s); fuzzing renders with much smaller ones to keep every input
// fast. Not charged: work inside one filter or method on a value within the
// bounds (sorting, string scans), which is at most quadratic in a bounded
// size.
struct JinjaLimits {
  int64_t steps = 4'000'000;
  size_t output_bytes = size_t(16) << 20;
};

class JinjaTemplate {
 public:
  using Json = nlohmann::ordered_json;
  // Parses `source`; throws JinjaError naming the line of a syntax error or
  // of an unsupported construct.
  explicit JinjaTemplate(const std::string& source);
  ~JinjaTemplate();
  JinjaTemplate(JinjaTemplate&&) noexcept;
  JinjaTemplate& operator=(JinjaTemplate&&) noexcept;

  // Renders with `variables` (an object: name -> value). raise_exception()
  // in the template throws JinjaError with its message.
  std::string render(const Json& variables, const JinjaLimits& limits = {}) const;

  struct Program;

 private:
  std::unique_ptr<Program> program_;
};

}  // namespace moec
