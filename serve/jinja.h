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
// statements, loop iterations, calls, range() items, and the values a name
// lookup copies (an array or object of n items costs n/8 more, a string of
// n bytes n/1024; the subject of ., [], a filter or a test is read in place,
// uncharged), so work stays proportional to the steps even where a loop
// copies a large variable. The defaults serve real chat templates over
// conversations of the server's default 1 MiB request body; fuzzing renders
// with much smaller ones to keep every input fast.
struct JinjaLimits {
  int64_t steps = 4'000'000;
  size_t output_bytes = size_t(16) << 20;  // rendered text, and any string built on the way
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
